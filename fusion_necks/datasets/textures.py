"""Random textures shared by the synthetic COCO and Cityscapes generators."""
from typing import Tuple

import cv2
import numpy as np


def smooth_noise(rng: np.random.Generator, shape: Tuple[int, int], cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a ``cells x cells`` random grid, bicubically upsampled."""
    h, w = shape
    grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
    out = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(out, 0.0, 1.0)


def textured_background(rng: np.random.Generator, shape: Tuple[int, int]) -> np.ndarray:
    """A cluttered but low-contrast RGB background (uint8 ``H x W x 3``).

    Mixes a random base colour, two octaves of smooth noise, a linear gradient,
    faint stripes and pixel noise, so that a detector cannot find objects by
    looking for a flat background.
    """
    h, w = shape
    base = rng.uniform(40, 215, size=3).astype(np.float32)
    coarse = smooth_noise(rng, shape, int(rng.integers(2, 5)))[..., None]
    fine = smooth_noise(rng, shape, int(rng.integers(8, 20)))[..., None]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    grad = (np.cos(angle) * xx / max(w, 1) + np.sin(angle) * yy / max(h, 1))[..., None]
    period = rng.uniform(6, 30)
    stripes = np.sin((np.cos(angle + 1.0) * xx + np.sin(angle + 1.0) * yy) * 2 * np.pi / period)[..., None]
    tint = rng.uniform(-1, 1, size=3).astype(np.float32)
    img = (base + 45 * (coarse - 0.5) * tint + 25 * (fine - 0.5) + 30 * (grad - 0.5)
           + 6 * stripes + rng.normal(0, 4, size=(h, w, 3)))
    return np.clip(img, 0, 255).astype(np.uint8)


def shaded_fill(rng: np.random.Generator, shape: Tuple[int, int], colour: np.ndarray) -> np.ndarray:
    """A colour with a soft random shading, for filling an object (float32 ``H x W x 3``)."""
    shade = smooth_noise(rng, shape, 2)[..., None]
    return np.clip(colour[None, None, :] * (0.75 + 0.5 * shade), 0, 255).astype(np.float32)

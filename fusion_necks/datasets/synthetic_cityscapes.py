"""A deterministic synthetic street-scene set in the Cityscapes layout.

Every image is a perspective street: sky, buildings with windows, trees, a road
with lane markings running to a vanishing point, sidewalks, terrain, walls,
fences, thin poles carrying traffic lights and signs, and, standing on the ground
at depth-consistent scales, persons, riders on bicycles and motorcycles, parked
bicycles, cars, trucks, buses and trams (Cityscapes' ``train``). All 19
evaluation classes occur in every split; some images show the ego vehicle's hood
(label id 1, ignored in evaluation), like the real set.

Layout written by :func:`generate_synthetic_cityscapes` (the official one)::

    <out>/leftImg8bit/{train,val}/<city>/<city>_<seq:06d>_<frame:06d>_leftImg8bit.png
    <out>/gtFine/{train,val}/<city>/<stem>_gtFine_labelTrainIds.png  (trainIds, 255 = ignore)
    <out>/gtFine/{train,val}/<city>/<stem>_gtFine_labelIds.png       (full label ids)
    <out>/gtFine/{train,val}/<city>/<stem>_gtFine_instanceIds.png    (id*1000+k for things)

so mmseg's ``CityscapesDataset`` loads it, ``IoUMetric`` evaluates the trainIds and
``CityscapesMetric`` (cityscapesscripts) the labelIds and instanceIds. Each image is
drawn from its own generator seeded by ``(seed, split, index)``.
"""
import os
import os.path as osp
from typing import Dict, List, Tuple

import cv2
import numpy as np

from .textures import smooth_noise

# trainId -> (Cityscapes label id, name); kept here so that generating data needs no
# cityscapesscripts (it is checked against cityscapesscripts in the tests).
TRAIN_IDS: Dict[int, Tuple[int, str]] = {
    0: (7, 'road'), 1: (8, 'sidewalk'), 2: (11, 'building'), 3: (12, 'wall'), 4: (13, 'fence'),
    5: (17, 'pole'), 6: (19, 'traffic light'), 7: (20, 'traffic sign'), 8: (21, 'vegetation'),
    9: (22, 'terrain'), 10: (23, 'sky'), 11: (24, 'person'), 12: (25, 'rider'), 13: (26, 'car'),
    14: (27, 'truck'), 15: (28, 'bus'), 16: (31, 'train'), 17: (32, 'motorcycle'),
    18: (33, 'bicycle'),
}
CLASSES = tuple(name for _, name in TRAIN_IDS.values())
THING_TRAIN_IDS = (11, 12, 13, 14, 15, 16, 17, 18)
EGO_VEHICLE_ID = 1
SPLITS = {'train': 0, 'val': 1}
CITIES = {'train': ('synthtown', 'mockburg', 'pixelheim'), 'val': ('testville',)}

(ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEGETATION, TERRAIN, SKY, PERSON,
 RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE) = range(19)


class Canvas:
    """An image with its trainId, label-id and instance-id maps, painted together."""

    def __init__(self, rng: np.random.Generator, h: int, w: int):
        self.rng, self.h, self.w = rng, h, w
        self.img = np.zeros((h, w, 3), np.float32)
        self.train = np.full((h, w), 255, np.uint8)
        self.ids = np.zeros((h, w), np.uint8)  # 0 = unlabeled
        self.inst = np.zeros((h, w), np.int32)
        self.counts = {t: 0 for t in THING_TRAIN_IDS}

    def new_instance(self, train_id: int) -> int:
        self.counts[train_id] += 1
        return TRAIN_IDS[train_id][0] * 1000 + self.counts[train_id] - 1

    def paint(self, mask: np.ndarray, train_id: int, colour, texture: float = 12.0,
              instance: int = 0) -> None:
        """Fill ``mask`` with ``colour`` (BGR, jittered by smooth noise) and label it."""
        if not mask.any():
            return
        colour = np.asarray(colour, np.float32)
        ys, xs = np.nonzero(mask)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        noise = smooth_noise(self.rng, (y1 - y0, x1 - x0), 3)[..., None] - 0.5
        patch = colour[None, None] + texture * noise
        sub = mask[y0:y1, x0:x1]
        self.img[y0:y1, x0:x1][sub] = patch[sub]
        self.train[mask] = train_id
        label_id = train_id if train_id == 255 else TRAIN_IDS[train_id][0]
        self.ids[mask] = EGO_VEHICLE_ID if train_id == 255 else label_id
        self.inst[mask] = instance if instance else self.ids[mask]

    def mask(self) -> np.ndarray:
        return np.zeros((self.h, self.w), np.uint8)


def _poly(c: Canvas, pts) -> np.ndarray:
    m = c.mask()
    cv2.fillPoly(m, [np.round(np.asarray(pts)).astype(np.int32)], 1)
    return m.astype(bool)


def _rect(c: Canvas, x0, y0, x1, y1) -> np.ndarray:
    return _poly(c, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)])


def _lines(c: Canvas, segments, thickness: int) -> np.ndarray:
    m = c.mask()
    for (xa, ya), (xb, yb) in segments:
        cv2.line(m, (int(round(xa)), int(round(ya))), (int(round(xb)), int(round(yb))), 1,
                 max(1, int(round(thickness))))
    return m.astype(bool)


def _ellipse(c: Canvas, cx, cy, ax, ay) -> np.ndarray:
    m = c.mask()
    cv2.ellipse(m, (int(round(cx)), int(round(cy))), (max(1, int(round(ax))), max(1, int(round(ay)))),
                0, 0, 360, 1, -1)
    return m.astype(bool)


def _ring(c: Canvas, cx, cy, r, thickness) -> np.ndarray:
    m = c.mask()
    cv2.circle(m, (int(round(cx)), int(round(cy))), max(1, int(round(r))), 1,
               max(1, int(round(thickness))))
    return m.astype(bool)


def _rand_colour(rng, lo=30, hi=230):
    return rng.uniform(lo, hi, 3)


# ----------------------------------------------------------------------- scene parts

def _draw_person(c: Canvas, x: float, ground: float, height: float, train_id: int = PERSON,
                 instance: int = 0) -> None:
    """A standing (or, with RIDER, sitting) figure whose feet are at ``ground``."""
    rng = c.rng
    instance = instance or c.new_instance(train_id)
    hw = height * 0.14
    head_r = height * 0.08
    legs = [((x - hw * 0.5, ground - height * 0.45), (x - hw * 0.6, ground)),
            ((x + hw * 0.5, ground - height * 0.45), (x + hw * 0.7, ground))]
    m = _lines(c, legs, hw * 0.6)
    m |= _rect(c, x - hw, ground - height * 0.8, x + hw, ground - height * 0.42)
    m |= _ellipse(c, x, ground - height * 0.88, head_r, head_r * 1.1)
    c.paint(m, train_id, _rand_colour(rng), texture=20, instance=instance)


def _draw_two_wheeler(c: Canvas, x: float, ground: float, size: float, motor: bool,
                      rider: bool) -> None:
    rng = c.rng
    train_id = MOTORCYCLE if motor else BICYCLE
    inst = c.new_instance(train_id)
    r = size * 0.22
    thick = max(1.0, size * (0.08 if motor else 0.04))
    xa, xb = x - size * 0.4, x + size * 0.4
    m = _ring(c, xa, ground - r, r, thick) | _ring(c, xb, ground - r, r, thick)
    frame = [((xa, ground - r), (x, ground - r * 2.2)), ((x, ground - r * 2.2), (xb, ground - r)),
             ((x - size * 0.1, ground - r * 2.4), (x + size * 0.25, ground - r * 2.4))]
    m |= _lines(c, frame, thick)
    if motor:
        m |= _ellipse(c, x, ground - r * 1.6, size * 0.3, r * 0.7)
    c.paint(m, train_id, (40, 40, 40) if not motor else _rand_colour(rng, 20, 120),
            texture=10, instance=inst)
    if rider:
        _draw_person(c, x, ground - r * 1.6, size * 1.3, RIDER)


def _draw_vehicle(c: Canvas, x: float, ground: float, scale: float, kind: int) -> None:
    rng = c.rng
    inst = c.new_instance(kind)
    if kind == CAR:
        w, h = scale * 1.0, scale * 0.45
        colour = _rand_colour(rng)
    elif kind == TRUCK:
        w, h = scale * 1.3, scale * 0.85
        colour = rng.choice([(230, 230, 230), (60, 60, 160), (40, 120, 40)])
    elif kind == BUS:
        w, h = scale * 2.2, scale * 0.95
        colour = rng.choice([(20, 200, 230), (40, 40, 200), (200, 120, 30)])
    else:  # TRAIN (a tram)
        w, h = scale * 3.2, scale * 0.9
        colour = (180, 150, 120)
    x0, x1 = x - w / 2, x + w / 2
    body = _rect(c, x0, ground - h * 0.85, x1, ground - h * 0.15)
    if kind == CAR:
        body |= _poly(c, [(x0 + w * 0.2, ground - h * 0.85), (x0 + w * 0.32, ground - h * 1.3),
                          (x1 - w * 0.3, ground - h * 1.3), (x1 - w * 0.15, ground - h * 0.85)])
    elif kind == TRUCK:
        body |= _rect(c, x0, ground - h * 1.25, x0 + w * 0.35, ground - h * 0.8)
    else:
        body |= _rect(c, x0, ground - h * 1.2, x1, ground - h * 0.8)
    wheel_r = h * 0.17
    for wx in (x0 + w * 0.2, x1 - w * 0.2):
        body |= _ellipse(c, wx, ground - wheel_r, wheel_r, wheel_r)
    c.paint(body, kind, colour, texture=15, instance=inst)
    # windows: still the vehicle, only darker
    win = _rect(c, x0 + w * 0.1, ground - h * (1.15 if kind != CAR else 1.2),
                x1 - w * 0.1, ground - h * (0.9 if kind != CAR else 0.88)) & body
    c.paint(win, kind, (60, 50, 40), texture=8, instance=inst)


def _draw_pole(c: Canvas, x: float, ground: float, height: float, thick: float, top: str) -> None:
    rng = c.rng
    top_y = ground - height
    c.paint(_lines(c, [((x, ground), (x, top_y))], thick), POLE, (70, 70, 75), texture=6)
    if top == 'light':
        bw, bh = max(3, thick * 2.2), max(6, thick * 5)
        box = _rect(c, x - bw / 2, top_y - bh, x + bw / 2, top_y)
        c.paint(box, LIGHT, (25, 25, 25), texture=4)
        lamp = _ellipse(c, x, top_y - bh * rng.choice([0.2, 0.5, 0.8]), bw * 0.3, bw * 0.3) & box
        c.paint(lamp, LIGHT, rng.choice([(40, 40, 230), (40, 200, 230), (60, 220, 60)]), texture=4)
    elif top == 'sign':
        s = max(4, thick * 4)
        shape = rng.integers(3)
        if shape == 0:
            m = _ellipse(c, x, top_y - s * 0.5, s * 0.6, s * 0.6)
        elif shape == 1:
            m = _poly(c, [(x - s * 0.6, top_y), (x + s * 0.6, top_y), (x, top_y - s * 1.1)])
        else:
            m = _rect(c, x - s * 0.7, top_y - s, x + s * 0.7, top_y)
        c.paint(m, SIGN, rng.choice([(40, 40, 220), (200, 120, 30), (30, 210, 230)]), texture=6)


def draw_scene(rng: np.random.Generator, h: int, w: int) -> Canvas:
    """Draw one street scene (see module docstring)."""
    c = Canvas(rng, h, w)
    horizon = h * rng.uniform(0.38, 0.5)
    vx = w * rng.uniform(0.4, 0.6)

    def depth(y: float) -> float:  # 0 at the horizon, 1 at the bottom row
        return float(np.clip((y - horizon) / (h - horizon), 0.0, 1.0))

    # sky: a vertical gradient, clear or overcast
    sky = np.zeros((h, w), bool)
    sky[:int(np.ceil(horizon)) + 1] = True
    c.paint(sky, SKY, rng.choice([(230, 190, 140), (215, 215, 210), (235, 200, 170)]), texture=25)

    # buildings on both sides, lower towards the vanishing point
    for side in (0, 1):
        x = 0.0 if side == 0 else w
        limit = vx - w * 0.08 if side == 0 else vx + w * 0.08
        while (side == 0 and x < limit) or (side == 1 and x > limit):
            bw = w * rng.uniform(0.06, 0.16)
            xn = min(x + bw, limit) if side == 0 else max(x - bw, limit)
            dist = abs((x + xn) / 2 - vx) / (w / 2)
            top = horizon - (horizon * rng.uniform(0.35, 0.95)) * dist
            bottom = horizon + (h - horizon) * 0.25 * dist
            m = _rect(c, min(x, xn), top, max(x, xn), bottom)
            colour = rng.choice([(120, 140, 170), (90, 90, 100), (150, 160, 165), (70, 90, 140)])
            c.paint(m, BUILDING, colour, texture=18)
            # windows (part of the building)
            nx, ny = int(rng.integers(2, 5)), int(rng.integers(2, 7))
            xs = np.linspace(min(x, xn), max(x, xn), nx + 2)[1:-1]
            ys = np.linspace(top, bottom, ny + 2)[1:-1]
            sx, sy = abs(xn - x) / (nx + 2) * 0.35, (bottom - top) / (ny + 2) * 0.3
            win = np.zeros((h, w), bool)
            for wx in xs:
                for wy in ys:
                    win |= _rect(c, wx - sx, wy - sy, wx + sx, wy + sy)
            c.paint(win & m, BUILDING, (50, 45, 40), texture=10)
            x = xn

    # road and sidewalks (perspective trapezoids to the vanishing point) on a paved
    # ground, so that no pixel below the horizon is left unlabelled
    hz = horizon + 1
    ground = np.zeros((h, w), bool)
    ground[int(np.floor(horizon)):] = True
    c.paint(ground & (c.train != BUILDING), SIDEWALK, (140, 150, 155), texture=14)
    road_l, road_r = w * rng.uniform(0.05, 0.2), w * rng.uniform(0.8, 0.95)
    c.paint(_poly(c, [(road_l, h), (road_r, h), (vx + 4, hz), (vx - 4, hz)]), ROAD,
            (95, 95, 100), texture=10)
    for t in np.linspace(0.05, 1.0, 7)[::2]:  # dashed centre line
        ya, yb = horizon + (h - horizon) * t, horizon + (h - horizon) * min(t + 0.1, 1)
        xa, xb = vx + (w / 2 - vx) * t, vx + (w / 2 - vx) * min(t + 0.1, 1)
        c.paint(_lines(c, [((xa, ya), (xb, yb))], max(1, 4 * t)), ROAD, (220, 220, 220), texture=4)
    side_w = w * rng.uniform(0.1, 0.2)
    left = [(road_l - side_w, h), (road_l, h), (vx - 4, hz), (vx - 10, hz)]
    right = [(road_r, h), (road_r + side_w, h), (vx + 10, hz), (vx + 4, hz)]
    for poly in (left, right):
        c.paint(_poly(c, poly), SIDEWALK, (150, 160, 165), texture=14)
    # terrain beyond one sidewalk
    t_side = int(rng.integers(2))
    if t_side == 0:
        c.paint(_poly(c, [(0, h), (road_l - side_w, h), (vx - 10, hz), (0, hz + (h - hz) * 0.3)]),
                TERRAIN, (80, 150, 120), texture=20)
    else:
        c.paint(_poly(c, [(road_r + side_w, h), (w, h), (w, hz + (h - hz) * 0.3), (vx + 10, hz)]),
                TERRAIN, (80, 150, 120), texture=20)
    # a low wall along the back of the other sidewalk
    wall_x = (0, vx - 12) if t_side == 1 else (vx + 12, w)
    wy = horizon + (h - horizon) * rng.uniform(0.1, 0.3)
    wx0 = rng.uniform(*wall_x)
    wx1 = np.clip(wx0 + (rng.uniform(0.1, 0.25) * w) * (1 if t_side == 1 else -1), 0, w)
    c.paint(_rect(c, min(wx0, wx1), wy - (h - horizon) * 0.12, max(wx0, wx1), wy), WALL,
            (170, 175, 180), texture=10)

    # trees (vegetation) behind the street furniture
    for _ in range(int(rng.integers(2, 5))):
        side = int(rng.integers(2))
        y = horizon + (h - horizon) * rng.uniform(0.05, 0.5)
        d = depth(y)
        x = (vx - (vx - road_l + side_w) * d - rng.uniform(5, 30)) if side == 0 else \
            (vx + (road_r + side_w - vx) * d + rng.uniform(5, 30))
        size = 10 + 110 * d
        m = _lines(c, [((x, y), (x, y - size))], max(2, size * 0.08))
        for _ in range(3):
            m |= _ellipse(c, x + rng.uniform(-0.3, 0.3) * size, y - size * rng.uniform(0.9, 1.3),
                          size * rng.uniform(0.35, 0.6), size * rng.uniform(0.3, 0.45))
        c.paint(m, VEGETATION, (50, 120, 60), texture=30)

    # fence along a sidewalk's outer edge
    fs = int(rng.integers(2))
    ya, yb = horizon + (h - horizon) * 0.3, h - 1
    xa = vx - (vx - road_l + side_w) * 0.3 if fs == 0 else vx + (road_r + side_w - vx) * 0.3
    xb = road_l - side_w if fs == 0 else road_r + side_w
    fh = lambda y: (h - horizon) * 0.18 * depth(y)  # noqa: E731
    segs = [((xa, ya - fh(ya)), (xb, yb - fh(yb))), ((xa, ya - fh(ya) * 0.5), (xb, yb - fh(yb) * 0.5))]
    for t in np.linspace(0, 1, 9):
        y, x = ya + (yb - ya) * t, xa + (xb - xa) * t
        segs.append(((x, y), (x, y - fh(y))))
    c.paint(_lines(c, segs, 2), FENCE, (60, 90, 110), texture=6)

    # things standing on the ground, drawn far to near
    items: List[Tuple[float, str]] = []
    for kind, (lo, hi) in (('pole', (3, 6)), ('person', (2, 5)), ('car', (2, 4)),
                           ('twowheeler', (1, 3)), ('truck', (0, 1)), ('bus', (0, 1)),
                           ('train', (0, 1)), ('parked', (0, 2))):
        for _ in range(int(rng.integers(lo, hi + 1))):
            items.append((horizon + (h - horizon) * rng.uniform(0.12, 0.97), kind))
    items.sort()
    poles_done = 0
    for y, kind in items:
        d = depth(y)
        road_x0 = vx + (road_l - vx) * d
        road_x1 = vx + (road_r - vx) * d
        side_l = (road_x0 - side_w * d, road_x0)
        side_r = (road_x1, road_x1 + side_w * d)
        on_side = side_l if rng.random() < 0.5 else side_r
        if kind == 'pole':
            top = ('light', 'sign', 'none')[poles_done % 3]
            poles_done += 1
            _draw_pole(c, rng.uniform(*on_side), y, (h - horizon) * 1.1 * d + 20,
                       max(2.0, 5 * d), top)
        elif kind == 'person':
            _draw_person(c, rng.uniform(*on_side), y, (h - horizon) * 0.65 * d + 6)
        elif kind == 'parked':
            _draw_two_wheeler(c, rng.uniform(*on_side), y, (h - horizon) * 0.35 * d + 6,
                              motor=False, rider=False)
        elif kind == 'twowheeler':
            _draw_two_wheeler(c, rng.uniform(road_x0, road_x1), y, (h - horizon) * 0.35 * d + 6,
                              motor=bool(rng.random() < 0.5), rider=True)
        else:
            k = {'car': CAR, 'truck': TRUCK, 'bus': BUS, 'train': TRAIN}[kind]
            _draw_vehicle(c, rng.uniform(road_x0 + 5, road_x1 - 5), y,
                          (h - horizon) * 0.6 * d + 8, k)

    if rng.random() < 0.3:  # ego vehicle's hood: ignored (trainId 255, label id 1)
        hood = _ellipse(c, w / 2, h + h * 0.05, w * 0.6, h * 0.12)
        c.paint(hood, 255, (30, 30, 35), texture=6)
    c.img += rng.normal(0, 3, c.img.shape)
    return c


def generate_split(out_dir: str, split: str, num_images: int, seed: int = 0,
                   size: Tuple[int, int] = (256, 512)) -> List[str]:
    """Write ``num_images`` scenes of ``size`` (H, W); returns the image stems."""
    if split not in SPLITS:
        raise ValueError(f'split must be one of {sorted(SPLITS)}, got {split!r}')
    h, w = size
    stems = []
    cities = CITIES[split]
    for index in range(num_images):
        rng = np.random.default_rng([seed, SPLITS[split], index])
        city = cities[index % len(cities)]
        stem = f'{city}_{index // len(cities):06d}_{19:06d}'
        img_dir = osp.join(out_dir, 'leftImg8bit', split, city)
        gt_dir = osp.join(out_dir, 'gtFine', split, city)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(gt_dir, exist_ok=True)
        c = draw_scene(rng, h, w)
        cv2.imwrite(osp.join(img_dir, f'{stem}_leftImg8bit.png'),
                    np.clip(c.img, 0, 255).astype(np.uint8))
        cv2.imwrite(osp.join(gt_dir, f'{stem}_gtFine_labelTrainIds.png'), c.train)
        cv2.imwrite(osp.join(gt_dir, f'{stem}_gtFine_labelIds.png'), c.ids)
        # cityscapesscripts reads instanceIds as int32 PNG (16-bit here: ids < 34000)
        cv2.imwrite(osp.join(gt_dir, f'{stem}_gtFine_instanceIds.png'), c.inst.astype(np.uint16))
        stems.append(stem)
    with open(osp.join(out_dir, f'{split}.txt'), 'w') as f:
        f.write('\n'.join(f'{s.split("_")[0]}/{s}' for s in stems) + '\n')
    return stems


def generate_synthetic_cityscapes(out_dir: str, num_train: int = 200, num_val: int = 40,
                                  seed: int = 0, size: Tuple[int, int] = (256, 512),
                                  overwrite: bool = False) -> Dict[str, int]:
    """Generate both splits (skipping a split whose list file exists, unless ``overwrite``)."""
    done = {}
    for split, num in (('train', num_train), ('val', num_val)):
        listing = osp.join(out_dir, f'{split}.txt')
        if osp.exists(listing) and not overwrite:
            with open(listing) as f:
                done[split] = sum(1 for line in f if line.strip())
            continue
        done[split] = len(generate_split(out_dir, split, num, seed=seed, size=size))
    return done


def class_pixel_counts(train_ids: np.ndarray) -> Dict[str, int]:
    """Pixels per class name in a trainId map (for reports and tests)."""
    counts = np.bincount(train_ids.reshape(-1), minlength=256)
    return {name: int(counts[t]) for t, (_, name) in TRAIN_IDS.items()}

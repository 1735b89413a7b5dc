"""Mask2Former pixel decoders (imported lazily by ``fusion_necks.registry``)."""

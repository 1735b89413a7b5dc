"""Necks. Modules here may subclass mmdet/mmseg classes, so this package does not
import them eagerly: ``fusion_necks.registry`` imports each one lazily."""

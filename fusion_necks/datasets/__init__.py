"""Synthetic datasets in the official COCO and Cityscapes layouts (numpy + OpenCV)."""

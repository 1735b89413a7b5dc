"""Training-loop pieces (mmengine hooks) used by our tools and configs."""

"""mmseg decode heads (imported lazily by ``fusion_necks.registry``)."""

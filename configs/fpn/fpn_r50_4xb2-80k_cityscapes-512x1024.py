# Semantic FPN R-50, Cityscapes 512x1024, 80k iterations (official mmseg config, unchanged;
# baseline of ../fine/fpn-fine_r50_4xb2-80k_cityscapes-512x1024.py).
_base_ = ['mmseg::sem_fpn/fpn_r50_4xb2-80k_cityscapes-512x1024.py',
          '../_base_/cityscapes_metrics.py']
custom_imports = dict(imports=['fusion_necks.registry'], allow_failed_imports=False)
# IoUMetric + CityscapesMetric (cityscapesscripts) for val and test
val_evaluator = _base_.cityscapes_evaluator
test_evaluator = _base_.cityscapes_evaluator

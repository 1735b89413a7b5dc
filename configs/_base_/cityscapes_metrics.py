# Real-data Cityscapes evaluation: mmseg's IoUMetric (mIoU) AND the official
# cityscapesscripts evaluation (CityscapesMetric: the `cityscapes/mIoU`-style class IoU of
# cityscapesscripts' evaluatePixelLevelSemanticLabeling on the *_labelTrainIds.png GT),
# for val and test. mmengine forbids the same key in two bases, and the mmseg base of each
# real-data config already defines val_evaluator / test_evaluator, so this file exports ONE
# variable that the configs assign:
#   _base_ = ['<mmseg or our base>', '../_base_/cityscapes_metrics.py']
#   val_evaluator = _base_.cityscapes_evaluator
#   test_evaluator = _base_.cityscapes_evaluator
# CityscapesMetric writes the *_leftImg8bit.png prediction files to output_dir, evaluates
# them against data_root's gtFine, then deletes output_dir (keep_results=False). For a
# test-server submission (no GT) pass
#   --cfg-options test_evaluator.1.format_only=True test_evaluator.1.keep_results=True
# (format_only requires keep_results). Override output_dir when runs overlap in time.
cityscapes_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    dict(type='CityscapesMetric', output_dir='work_dirs/format_results/cityscapes',
         format_only=False, keep_results=False),
]

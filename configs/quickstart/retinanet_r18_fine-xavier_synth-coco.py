# Quickstart / demo: the FINE quickstart (./retinanet_r18_fine_synth-coco.py) with a
# Xavier-initialised W_O instead of the default zero W_O (so FINE does not start as the
# identity); the init comparison of docs/fine.md.
#   python tools/demo.py --neck fine-xavier      (make demo NECK=fine-xavier)
_base_ = './retinanet_r18_fine_synth-coco.py'
model = dict(neck=dict(fine_cfg=dict(zeros_init=False)))

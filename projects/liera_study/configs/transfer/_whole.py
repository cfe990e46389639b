# The whole-detector variant of the embedded transfer task (README "Adapting a whole trained
# detector"; docs/whole_detector.md): instead of a pre-trained backbone with new neck and
# heads, every method starts from the whole Mask R-CNN the demo pre-trains on its shapes
# (configs/demo/full_maskrcnn_convnextv2-atto_synthetic-pretrain.py), saved without its class
# layers as projects/liera_study/results/transfer_study/start_detector.pth (17 MB, shipped; weights sha256 pinned
# below; PretrainBackboneHook with prefix='' makes it again only when missing), and adapts it
# whole to the transfer task's classes. (Its backbone is not start_backbone.pth: the same
# pre-training re-run on 2026-12-02 on this machine gave other weights than the earlier run
# that made start_backbone.pth, so the two studies start from different pre-trainings.) type=
# 'LieRADetector' re-creates the class layers (fc_cls, fc_reg, conv_logits: they train fully,
# at the base lr) and freezes everything else but what each arm trains:
#   whole_frozen.py  neck and heads retrained fully, backbone frozen
#   whole_lora.py / whole_liera.py  rank-8 factors in backbone, neck, RPN and RoI heads
#   whole_full.py    everything trains
# The searched value, chosen per arm on val (projects/liera_study/tools/transfer_whole_study.sh): the adapter arms'
# lr_mult of every adapter factor (custom key 'lora_'; the class layers stay at the base lr
# 1e-3), the other arms' base lr (optim_wrapper.optimizer.lr: all they train, class layers
# included).
_base_ = ['./_base_transfer.py']

start_detector = '{{ fileDirname }}/../../results/transfer_study/start_detector.pth'
class_layers = [
    'roi_head.bbox_head.fc_cls', 'roi_head.bbox_head.fc_reg', 'roi_head.mask_head.conv_logits'
]
model = dict(
    type='LieRADetector',
    detector='MaskRCNN',
    adapters=dict(),
    new_layers='auto',
    backbone=dict(init_cfg=None))  # every weight comes from load_from
start_detector_sha256 = '10b5162fd35980993fe84348afc5f9110efad63d32642bec78f29eedd3fe98be'
load_from = start_detector
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=dict(_delete_=True)))
detector_hook = dict(
    type='PretrainBackboneHook',
    config={{_base_.pretrain_config}},
    checkpoint=start_detector,
    prefix='',
    drop=class_layers,
    sha256=start_detector_sha256)
custom_hooks = [dict(type='LieRAFreezeHook'), detector_hook]

# The capacity study (projects/liera_study/docs/capacity_study.md): when does LieRA beat LoRA?
# The classification study's model, backbone (results/transfer_cls_study/start_backbone.pth),
# optimizer and schedule on one of five tasks (projects/liera_study/liera_study/datasets/
# capacity_cls.py), chosen per run with the options capacity_cls.task_cfg_options(task) gives
# (the task and its number of classes; projects/liera_study/tools/capacity_study.sh passes them):
#   teacher_multiplicative, teacher_additive  the sensitivity check: labels from the start
#       backbone perturbed as W ⊙ (1 + ΔW) or W + ΔW (rank 2)
#   recolour   a re-weighting shift: the three pre-training shapes at one luminance, hue only
#       (failed its gate); recolour_opponent, its redesign: the object differs in one hue axis,
#       a distractor shape in the other
#   gratings   a new-filter shift: class = a grating's period and orientation at fixed colours
# No flip in training (it would mirror a grating's orientation into the other class, and a
# teacher's labels are not flip-invariant).
_base_ = ['../transfer_cls/_base_transfer_cls.py']

data_root = '{{$MMLIERA_CAPACITY_DATA:{{ fileDirname }}/../../../../data/capacity/}}'
task = 'recolour'
num_classes = 3
# splits train / val / test; the teacher's settings (read by the teacher tasks only)
synthetic = dict(image_size=64, splits=dict(train=1600, val=400, test=1000))
teacher = dict(start={{_base_.pretrained}}, rank=2, eps=0.5, teacher_seed=0)

model = dict(head=dict(num_classes=num_classes), data_preprocessor=dict(num_classes=num_classes))
train_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
test_pipeline = train_pipeline


def _split(name, pipeline):
    return dict(
        dataset=dict(
            _delete_=True,
            type='CapacityClsDataset',
            data_root=data_root,
            task=task,
            synthetic=synthetic,
            teacher=teacher,
            ann_file=f'{name}.txt',
            pipeline=pipeline))


train_dataloader = _split('train', train_pipeline)
val_dataloader = _split('val', test_pipeline)
test_dataloader = _split('test', test_pipeline)

# 600 iterations of batch 32 (12 epochs of the 1600 training images), val every 100
max_iters = 600
train_cfg = dict(max_iters=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=20, end=max_iters, eta_min_ratio=0.05),
]
default_hooks = dict(checkpoint=dict(interval=max_iters))

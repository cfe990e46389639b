# The multi-adapter demo's second task (docs/multi_adapter.md): the same base detector and
# adapters as whole_liera_maskrcnn_convnextv2-atto_synthetic.py, another task: only discs and
# triangles (2 classes; the squares are background). Its adapter file is served beside the
# first task's from one base model; each keeps its own class names.
_base_ = ['./whole_liera_maskrcnn_convnextv2-atto_synthetic.py']

classes = ('disc', 'triangle')
metainfo = dict(classes=classes, palette=[(0, 130, 200), (60, 180, 75)])
model = dict(
    roi_head=dict(bbox_head=dict(num_classes=len(classes)),
                  mask_head=dict(num_classes=len(classes))))
train_dataloader = dict(dataset=dict(metainfo=metainfo))
val_dataloader = dict(dataset=dict(metainfo=metainfo))
test_dataloader = val_dataloader

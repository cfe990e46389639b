# A new COCO-format dataset with other classes than the detector was trained on: mmdet's
# fine-tuning tutorial's balloon set (61 train / 13 val images, one class), converted to COCO
# format as that tutorial does. Layout:
#   data/balloon/train/annotation_coco.json, data/balloon/train/*.jpg
#   data/balloon/val/annotation_coco.json,   data/balloon/val/*.jpg
# For your own data: change balloon_root, the paths and `classes`; the configs that use this
# file set the detector's num_classes to len(classes) and take these datasets:
#   train_dataloader = dict(dataset={{_base_.balloon_train}}), and the same for val / test.
# (Names other than mmdet's own keys: a config's bases may not share a key.)
balloon_root = 'data/balloon/'
classes = ('balloon', )
balloon_meta = dict(classes=classes, palette=[(220, 20, 60)])
balloon_train = dict(
    data_root=balloon_root,
    metainfo=balloon_meta,
    ann_file='train/annotation_coco.json',
    data_prefix=dict(img='train/'))
balloon_val = dict(
    data_root=balloon_root,
    metainfo=balloon_meta,
    ann_file='val/annotation_coco.json',
    data_prefix=dict(img='val/'))
balloon_val_ann = balloon_root + 'val/annotation_coco.json'

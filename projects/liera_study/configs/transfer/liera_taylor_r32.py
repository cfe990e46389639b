# LieRA Taylor at rank 32 (the rank study: mAP against trainable parameters).
_base_ = ['./liera_taylor.py']
model = dict(backbone=dict(adapter=dict(rank=32)))

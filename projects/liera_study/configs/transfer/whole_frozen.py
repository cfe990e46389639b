# Whole detector, "heads retrained": the pre-trained neck and heads train fully from their
# pre-trained weights, the backbone stays frozen; class layers re-created.
_base_ = ['./_whole.py']
model = dict(trainable=['neck', 'rpn_head', 'roi_head'])

# Whole detector, full fine-tuning: every parameter trains from the pre-trained detector;
# class layers re-created.
_base_ = ['./_whole.py']
model = dict(trainable=['backbone', 'neck', 'rpn_head', 'roi_head'])

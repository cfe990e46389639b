# Base: the pre-trained backbone frozen (plain ConvNeXt, no adapters); neck and heads train.
# (Its backbone lr_mult changes nothing: no backbone parameter trains.)
_base_ = ['./_base_transfer.py']

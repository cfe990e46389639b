# Base: the pre-trained backbone frozen (plain ConvNeXt, no adapters); neck and heads train.
_base_ = ['./_base_transfer.py']

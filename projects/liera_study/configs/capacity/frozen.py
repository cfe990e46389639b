# Linear probe: the pre-trained backbone frozen (plain ConvNeXt, no adapters); the head trains.
# (Its backbone lr_mult changes nothing: no backbone parameter trains.)
_base_ = ['./_base_capacity.py']

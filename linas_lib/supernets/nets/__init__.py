"""The torch modules of the built-in trained super-networks, one module per plugin.

A plugin module holds the search space, the architecture constants and the closed-form
complexity (no torch); its net module here is imported only when weights are built,
trained or loaded, as `supernets.ofa` does with `_mbv3_net` and `_resnet_net`.
"""

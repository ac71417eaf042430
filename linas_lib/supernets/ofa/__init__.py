"""Once-for-All super-networks (Cai et al., ICLR 2020) as LINAS plugins.

"ofa_mbv3" and "ofa_resnet50" are our own torch implementations of OFA's
OFAMobileNetV3 and OFAResNets, parameter for parameter, so the released OFA
checkpoints load into them unchanged (including older key spellings such as
`.mobile_inverted_conv.`). We do not depend on the `ofa` package: its modules import
torchvision, whose PyPI builds do not load beside our torch build, and we only need
the networks. Sub-networks are extracted exactly like OFA's
`get_active_subnet(preserve_weight=True)`: leading-channel slices, centre-cropped
kernels passed through the learned kernel transformation matrices, and fresh
batch-norm statistics before scoring or export.

Without a checkpoint the networks are initialised like OFA (he_fout) and only
latency, MACs and parameter counts are meaningful; `evaluate` refuses.
"""
from linas_lib.supernets.ofa import mbv3, resnet  # noqa: F401  (register the plugins)
from linas_lib.supernets.ofa.common import DataRequiredError, OFASupernet, WeightsRequiredError

__all__ = ["OFASupernet", "WeightsRequiredError", "DataRequiredError"]

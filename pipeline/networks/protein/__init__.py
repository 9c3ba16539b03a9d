"""The protein network (MultiFlow's FlowModel, typed): configs, model, checkpoints.

Import from here: :class:`ProteinNetwork`, :class:`ProteinNetworkInput`, :class:`ProteinNetworkOutput`,
:class:`ProteinNetworkConfig`, ``CONFIGS`` (``multiflow``, ``small``).
"""

from pipeline.networks.protein.config import CONFIGS, ProteinNetworkConfig
from pipeline.networks.protein.model import ProteinNetwork, ProteinNetworkInput, ProteinNetworkOutput

__all__ = ["CONFIGS", "ProteinNetwork", "ProteinNetworkConfig", "ProteinNetworkInput", "ProteinNetworkOutput"]

"""The protein network (MultiFlow's FlowModel, typed): configs, model, checkpoints.

Import from here: :class:`ProteinNetwork`, :class:`ProteinNetworkInput`, :class:`ProteinNetworkOutput`,
:class:`ProteinNetworkConfig`, ``CONFIGS`` (``multiflow``, ``small``).
"""

from pipeline.proteins.network.config import CONFIGS, ProteinNetworkConfig
from pipeline.proteins.network.model import ProteinNetwork, ProteinNetworkInput, ProteinNetworkOutput

__all__ = ["CONFIGS", "ProteinNetwork", "ProteinNetworkConfig", "ProteinNetworkInput", "ProteinNetworkOutput"]

"""Training the protein co-design model: data (:mod:`.data`), x_t from the protein flow's product path
(:mod:`.interpolant`), MultiFlow's losses (:mod:`.losses`) and the Lightning trainer (:mod:`.trainer`)."""

from pipeline.common.training import DeviceSettings
from pipeline.proteins.train.trainer import ProteinTrainConfig, train_proteins

__all__ = ["DeviceSettings", "ProteinTrainConfig", "train_proteins"]

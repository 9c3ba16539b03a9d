"""Training the protein co-design model: data (:mod:`.data`), the path's x_t (:mod:`.interpolant`), MultiFlow's
losses (:mod:`.losses`) and the Lightning trainer (:mod:`.trainer`)."""

from pipeline.proteins.train.trainer import ProteinTrainConfig, train_proteins

__all__ = ["ProteinTrainConfig", "train_proteins"]

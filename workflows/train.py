"""Python entry points for training (the ``genmatch train crystals`` / ``train proteins`` stages).

    from workflows.train import TrainConfig, train_crystals
    result = train_crystals(TrainConfig(dataset="perov_5", split="val", network="small"), "runs/perov")
    result.model_path   # OUT/model.safetensors (EMA weights + record); usable as --model in generate

    from workflows.train import ProteinTrainConfig, train_proteins
    result = train_proteins(ProteinTrainConfig(network="small", max_length=128), "runs/protein_small")
    result.best_path    # OUT/best.safetensors; pipeline.proteins.network.checkpoint.load_protein_network reads it

An interrupted run resumes from ``OUT/lightning/last.ckpt`` when called again with the same settings.
"""

from pipeline.crystals.train import TrainConfig, TrainResult, train_crystals
from pipeline.proteins.train.trainer import ProteinTrainConfig, train_proteins

__all__ = ["ProteinTrainConfig", "TrainConfig", "TrainResult", "train_crystals", "train_proteins"]

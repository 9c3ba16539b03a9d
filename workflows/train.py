"""Python entry point for training a crystal generator (the ``genmatch train crystals`` stage).

    from workflows.train import TrainConfig, train_crystals
    result = train_crystals(TrainConfig(dataset="perov_5", split="val", network="small"), "runs/perov")
    result.model_path   # OUT/model.safetensors (EMA weights + record); usable as --model in generate

An interrupted run resumes from ``OUT/lightning/last.ckpt`` when called again with the same settings.
"""

from pipeline.train.crystals import TrainConfig, TrainResult, train_crystals

__all__ = ["TrainConfig", "TrainResult", "train_crystals"]

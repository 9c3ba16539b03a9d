"""Property predictors p_phi(y | x_t, t) on noisy crystal token sequences, for predictor guidance of the crystal
CTMC (Nisonoff et al. 2024) and for judging guided samples.

- :mod:`.network`: :class:`CrystalPredictor` (permutation invariant over atoms; long tokens or one-hot input) and
  :class:`PredictorNetConfig`.
- :mod:`.data`: the data (a data set split or a CDVAE CSV; numeric property columns) and x_t on the generator path.
- :mod:`.train`: :class:`PredictorTrainConfig` and :func:`train_predictor` (a resumable run folder).
- :mod:`.evaluate`: the held-out table (MAE / RMSE / calibration per noise level) stored in the record.
- :mod:`.model`: :func:`load_predictor` (model files of kind ``crystal_predictor``; shipped ones by name).

Targets (ranges, inequalities) and their log-likelihood under a predictor are in :mod:`pipeline.crystals.targets`.
"""

from pipeline.crystals.predictor.model import (DEFAULT_PREDICTORS, CrystalPredictorModel, load_predictor,
                                               resolve_predictor_path)
from pipeline.crystals.predictor.network import CrystalPredictor, PredictorNetConfig
from pipeline.crystals.predictor.train import PredictorTrainConfig, TrainedPredictor, train_predictor

__all__ = ["DEFAULT_PREDICTORS", "CrystalPredictor", "CrystalPredictorModel", "PredictorNetConfig",
           "PredictorTrainConfig", "TrainedPredictor", "load_predictor", "resolve_predictor_path", "train_predictor"]

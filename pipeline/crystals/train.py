"""Training the crystal generator: KO-DFM with the permutation-invariant DiT, in PyTorch Lightning.

Objective (mask source, mixture path KO eq. 2): draw t ~ U[0, 1 - eps], x_t ~ p_t(. | x_1) per
position (padding stays PAD), and minimise either

* ``ce``: the cross-entropy KO eq. 11, -sum_i log p^theta_{1|t}(x_1^i | x_t), or
* ``elbo``: minus the integrand of the mixture-path ELBO KO eq. 37 at t (an unbiased estimate of
  minus the ELBO on log p^theta_1(x_1) up to the factor 1 - eps),

summed over real tokens and divided by their number in the batch. AdamW, linear warm-up (then
constant or cosine), gradient clipping, an exponential moving average (EMA) of the weights (the
shipped model), a held-out validation split (cross-entropy per token of the EMA model on a fixed
stratified time grid with a fixed seed). Every validation writes ``OUT/model.safetensors`` (EMA
weights + record: config, data set name and SHA-256, code version, validation curve) and, when the
validation loss improves, ``OUT/best.safetensors``; Lightning's ``OUT/lightning/last.ckpt`` holds the
resume state (optimizer, EMA, curve, data order). Multi-device / multi-node via Lightning's DDP.
"""

from __future__ import annotations

import copy
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from manifolds.discrete import cross_entropy, mixture_elbo_integrand
from pipeline.common.model_file import ModelFile
from pipeline.crystals.flow import (CoordinatePath, CrystalPosterior, atom_mask_of, make_path, token_mask_of,
                                   trim_padding)
from pipeline.crystals.names import COORD_PATHS, LOSSES, LR_SCHEDULES, SCHEDULER_NAMES, SchedulerName
from pipeline.crystals.network import CONFIGS, CrystalDiT, CrystalDiTConfig
from pipeline.common.run import fingerprint
from pipeline.common.training import (DeviceSettings, OptimSettings, TrainedModel, TrainingModule,  # noqa: F401
                                      check_resume_state, code_version, fit, is_ddp_worker, quiet_lightning,
                                      training_run)
from structures.cache import file_sha256
from structures.data import CRYSTAL_DATASETS, SPLITS
from structures.errors import InputError
from structures.crystals.dataset import TokenizedCrystals
from structures.crystals.tokens import PAD, transform_fractions
from structures.validate import check_bool, check_choice, check_float, check_instance, check_int

__all__ = ["CrystalDataModule", "CrystalFlowModule", "CrystalTrainConfig", "TrainedModel", "augment_tokens",
           "collate_tokens", "dataset_file", "flow_loss", "load_tokens", "noisy_tokens", "train_crystals"]


@dataclass
class CrystalTrainConfig:
    """Everything that defines a crystal training run (stored in the model record); validated once, when made
    (:class:`~structures.errors.InputError` naming the field). Choices accept the command line's spellings
    ("kinetic-optimal" is "kinetic_optimal")."""

    dataset: str = "perov_5"  # a data set name, or a CDVAE-format CSV path
    split: str = "val"
    network: str | dict = "small"  # a preset of pipeline.crystals.network.CONFIGS or a config dict
    scheduler: SchedulerName = "kinetic_optimal"
    loss: Literal["ce", "elbo"] = "ce"
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 200
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    max_steps: int = 20_000
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    t_eps: float = 1e-3
    augment: bool = False  # random origin shift + inversion of every training crystal (exact on the token grid)
    coord_path: str = "mask"  # "metric": KO eq. 27 on the fractional coordinates (pipeline.crystals.flow.CoordinatePath)
    coord_beta: tuple[float, float] = (5.0, 1.0)  # (c, a) of beta_t = c (t / (1 - t))^a for the metric path
    val_fraction: float = 0.05
    val_every: int = 500
    val_times: int = 8  # stratified time points per validation crystal
    seed: int = 0
    limit: int | None = None  # use only the first N crystals of the split (tests, smoke runs)

    def __post_init__(self) -> None:
        name = type(self).__name__
        self.dataset = os.fspath(self.dataset) if isinstance(self.dataset, os.PathLike) else self.dataset
        check_instance(f"{name}.dataset", self.dataset, str, "a data set name (perov_5, carbon_24, mp_20) or a "
                       "CDVAE-format CSV path")
        check_instance(f"{name}.split", self.split, str, "a split name (train, val, test)")
        if self.dataset in CRYSTAL_DATASETS and self.split not in SPLITS:
            raise InputError(f"{name}.split: data set {self.dataset!r} has no split {self.split!r}; choose one of "
                             f"{', '.join(SPLITS)}")
        for field, choices in (("scheduler", SCHEDULER_NAMES), ("loss", LOSSES), ("lr_schedule", LR_SCHEDULES),
                               ("coord_path", COORD_PATHS)):
            setattr(self, field, check_choice(f"{name}.{field}", getattr(self, field), choices))
        for field in ("batch_size", "max_steps", "val_every", "val_times"):
            check_int(f"{name}.{field}", getattr(self, field), minimum=1)
        check_int(f"{name}.warmup_steps", self.warmup_steps, minimum=0)
        check_int(f"{name}.seed", self.seed, 0)
        if self.limit is not None:
            check_int(f"{name}.limit", self.limit, minimum=1)
        for field, low, high, strict in (("lr", 0.0, None, True), ("weight_decay", 0.0, None, False),
                                         ("grad_clip", 0.0, None, True), ("ema_decay", 0.0, 1.0, False),
                                         ("t_eps", 0.0, 1.0, True), ("val_fraction", 0.0, 1.0, True)):
            setattr(self, field, check_float(f"{name}.{field}", getattr(self, field), low, high, strict))
        for field in ("ema_decay", "t_eps", "val_fraction"):  # open at 1
            if getattr(self, field) >= 1.0:
                raise InputError(f"{name}.{field} must be below 1, got {getattr(self, field)}")
        check_bool(f"{name}.augment", self.augment)
        beta = self.coord_beta
        if isinstance(beta, (str, bytes)) or not isinstance(beta, Sequence) or len(beta) != 2:
            raise InputError(f"{name}.coord_beta must be a pair (c, a) of positive numbers, got {beta!r}")
        self.coord_beta = tuple(check_float(f"{name}.coord_beta[{i}]", v, 0.0, strict_minimum=True)
                                for i, v in enumerate(beta))  # type: ignore[assignment]
        if self.coords().metric and self.loss != "ce":
            raise InputError(f"{name}.loss: the metric coordinate path is trained with the cross-entropy only "
                             "(loss='ce', CLI --loss ce)")
        try:
            self.network_config()
        except (TypeError, ValueError) as exc:
            raise InputError(f"{name}.network: {exc}") from None

    def coords(self) -> CoordinatePath:
        return CoordinatePath(self.coord_path, float(self.coord_beta[0]), float(self.coord_beta[1]))

    def network_config(self) -> CrystalDiTConfig:
        if isinstance(self.network, dict):
            return CrystalDiTConfig(**self.network)
        if self.network not in CONFIGS:
            raise ValueError(f"unknown network preset {self.network!r}; choose one of {', '.join(CONFIGS)} or give "
                             "a dict of CrystalDiTConfig fields")
        return CONFIGS[self.network]


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


class _Rows(Dataset):
    def __init__(self, tokens: np.ndarray) -> None:
        self.tokens = tokens  # [N, 6 + 4A] int16

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int) -> Tensor:
        return torch.from_numpy(self.tokens[i].astype(np.int64))


def collate_tokens(items: list[Tensor]) -> Tensor:
    """Stack ``[6 + 4A]`` rows and drop atom slots that are padding in every row: ``[B, 6 + 4A']``."""
    return trim_padding(torch.stack(items))


def load_tokens(cfg: CrystalTrainConfig, progress: bool = False) -> tuple[TokenizedCrystals, dict[str, Any]]:
    """The tokenised training split and its description (name, split, file, SHA-256, atom counts)."""
    import warnings

    from structures.data import CRYSTAL_DATASETS, DataNotFoundError

    path = dataset_file(cfg)
    try:
        with warnings.catch_warnings():  # pymatgen's notes on bad rows: the skipped rows are reported instead
            warnings.simplefilter("ignore")
            if cfg.dataset in CRYSTAL_DATASETS:
                ds = TokenizedCrystals.from_name(cfg.dataset, cfg.split, progress=progress, limit=cfg.limit)
            else:
                ds = TokenizedCrystals.from_csv(path, progress=progress, limit=cfg.limit)
    except DataNotFoundError:
        raise
    except (ValueError, KeyError, OSError) as exc:  # not a CDVAE-format CSV (no 'cif' column, not text, ...)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise InputError(f"{path}: cannot read the training data ({first}); give a CDVAE-format CSV") from None
    name = cfg.dataset if cfg.dataset in CRYSTAL_DATASETS else path.name.split(".")[0]
    if len(ds) < 2:
        raise InputError(f"{path}: {len(ds)} usable crystals of {len(ds) + len(ds.skipped)} rows; training "
                         "needs at least 2" + (f" (e.g. row {next(iter(ds.skipped))}: "
                                               f"{next(iter(ds.skipped.values()))[:120]})" if ds.skipped else ""))
    info = {"name": name, "split": cfg.split if cfg.dataset in CRYSTAL_DATASETS else None, "file": path.name,
            "sha256": file_sha256(path), "n_crystals": len(ds), "n_skipped": len(ds.skipped),
            "skipped": {str(k): v[:200] for k, v in list(ds.skipped.items())[:50]},
            "max_atoms": ds.max_atoms, "atom_count_distribution": ds.atom_count_distribution().tolist(),
            "elements": training_elements(ds.tokens)}  # what conditioned sampling may ask for
    return ds, info


def training_elements(tokens: np.ndarray) -> list[str]:
    """Symbols of the elements in token sequences ``[N, 6 + 4A]``, sorted by Z (the record's ``dataset.elements``)."""
    from pipeline.crystals.formulas import element_symbol
    from structures.crystals.tokens import ELEMENT_OFFSET

    ids = np.unique(np.asarray(tokens)[:, 6::4])
    return [element_symbol(int(i) - ELEMENT_OFFSET + 1) for i in ids if ELEMENT_OFFSET <= i < ELEMENT_OFFSET + 94]


class CrystalDataModule(L.LightningDataModule):
    """Train / validation split (seeded permutation, ``val_fraction`` held out) of one tokenised split."""

    def __init__(self, cfg: CrystalTrainConfig, progress: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        self.data, self.info = load_tokens(cfg, progress)
        perm = np.random.default_rng(cfg.seed).permutation(len(self.data))
        n_val = max(1, int(round(cfg.val_fraction * len(perm))))
        self.val_idx, self.train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        self.info.update(n_train=len(self.train_idx), n_val=len(self.val_idx))

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Rows(self.data.tokens[self.train_idx]), batch_size=self.cfg.batch_size, shuffle=True,
                          drop_last=len(self.train_idx) > self.cfg.batch_size, collate_fn=collate_tokens)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(_Rows(self.data.tokens[self.val_idx]), batch_size=self.cfg.batch_size, shuffle=False,
                          collate_fn=collate_tokens)


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------


def noisy_tokens(x1: Tensor, t: Tensor, scheduler: str, generator: torch.Generator | None = None,
                 coords: CoordinatePath = CoordinatePath()) -> Tensor:
    """x_t ~ p_t(. | x_1) per position (KO eq. 2, mask source; KO eq. 27 on the coordinates with a metric
    ``coords``); padded slots stay PAD. ``[B, 6 + 4A]``."""
    xt = make_path(scheduler, coords).sample(x1, t, generator)
    return torch.where(token_mask_of(atom_mask_of(x1)), xt, torch.full_like(xt, PAD))


def flow_loss(posterior: CrystalPosterior, x1: Tensor, xt: Tensor, t: Tensor, loss: str,
              scheduler: str) -> tuple[Tensor, Tensor]:
    """Loss per real token of a batch ``x1`` ``[B, 6 + 4A]`` at noisy ``xt`` and times ``t`` ``[B]``: (loss, n_tokens).

    ``ce``: KO eq. 11. ``elbo``: minus the KO eq. 37 integrand (the t-integral is the expectation over t).
    """
    atom_mask = atom_mask_of(x1)  # [B, A]
    token_mask = token_mask_of(atom_mask)  # [B, 6 + 4A]
    logits = posterior(xt, t, atom_mask)  # [B, 6 + 4A, V]
    if loss == "ce":
        per = cross_entropy(logits, x1, token_mask)  # [B]
    else:
        per = -mixture_elbo_integrand(logits, x1, xt, make_path(scheduler), t, mask=token_mask)  # [B]
    n = token_mask.sum()
    return per.sum() / n, n


def augment_tokens(x1: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """A random origin shift (uniform on the 0.01 grid per axis) and, with probability 1/2, an inversion of
    each crystal in ``x1`` ``[B, 6 + 4A]`` (:func:`structures.crystals.tokens.transform_fractions`).

    The data distribution of crystals is invariant under both (a crystal has no preferred origin; a mirror
    image has the same energy), so the trained posterior is pushed towards that invariance instead of
    memorising the canonical origins of a small training split.
    """
    shift = torch.randint(0, 100, (x1.shape[0], 3), generator=generator, device=x1.device)  # [B, 3]
    invert = torch.rand(x1.shape[0], generator=generator, device=x1.device) < 0.5  # [B]
    return transform_fractions(x1, shift, invert)


class CrystalFlowModule(TrainingModule):
    """The DiT posterior, its EMA copy and the KO-DFM objective (shared machinery: :class:`TrainingModule`)."""

    def __init__(self, cfg: CrystalTrainConfig, dataset_info: dict[str, Any] | None = None) -> None:
        super().__init__(OptimSettings(lr=cfg.lr, weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_steps,
                                       lr_schedule=cfg.lr_schedule, max_steps=cfg.max_steps,
                                       ema_decay=cfg.ema_decay))
        self.cfg = cfg
        self.dataset_info = dataset_info or {}
        torch.manual_seed(cfg.seed)
        self.coords = cfg.coords()
        self.posterior = CrystalPosterior(CrystalDiT(cfg.network_config()), ring=self.coords.metric)
        self.ema = copy.deepcopy(self.posterior).requires_grad_(False).eval()

    def ema_pair(self) -> tuple[torch.nn.Module, torch.nn.Module]:
        return self.ema, self.posterior

    def training_step(self, x1: Tensor, batch_idx: int) -> Tensor:
        if self.cfg.augment:
            x1 = augment_tokens(x1)
        t = torch.rand(x1.shape[0], device=x1.device) * (1.0 - self.cfg.t_eps)  # [B]
        xt = noisy_tokens(x1, t, self.cfg.scheduler, coords=self.coords)
        loss, _ = flow_loss(self.posterior, x1, xt, t, self.cfg.loss, self.cfg.scheduler)
        self.note_train_loss(loss, x1.shape[0])
        return loss

    # -- validation (EMA weights, fixed times and noise) ---------------------------------------
    @torch.no_grad()
    def validation_step(self, x1: Tensor, batch_idx: int) -> None:
        k = self.cfg.val_times
        g = torch.Generator(device=x1.device).manual_seed(self.cfg.seed * 1_000_003 + batch_idx)
        for j in range(k):
            t = ((j + torch.rand(x1.shape[0], generator=g, device=x1.device)) / k) * (1.0 - self.cfg.t_eps)
            xt = noisy_tokens(x1, t, self.cfg.scheduler, g, self.coords)
            loss, n = flow_loss(self.ema, x1, xt, t, "ce", self.cfg.scheduler)
            self.val_totals += torch.stack([loss.double() * n, n.double()]) / k

    def on_validation_epoch_end(self) -> None:
        total = self.reduced_val_totals()
        self.finish_validation(float(total[0] / total[1].clamp_min(1)), "val_ce")

    # -- records -------------------------------------------------------------------------------
    def record(self) -> dict[str, Any]:
        cfg = asdict(self.cfg)
        flow = {"source": "mask", "scheduler": self.cfg.scheduler, "loss": self.cfg.loss, "path": "mixture (KO eq. 2)"}
        if self.coords.metric:
            flow.update(path="mixture (KO eq. 2); fractional coordinates metric-induced (KO eq. 27)",
                        coordinates=self.coords.record())
        return {"kind": "crystal_dit", "network": self.cfg.network_config().to_dict(),
                "network_preset": self.cfg.network if isinstance(self.cfg.network, str) else None,
                "flow": flow,
                "weights": "ema", "training": {**cfg, **self.training_fields()},
                "dataset": self.dataset_info, "validation_curve": self.val_curve,
                "train_curve": self.train_curve, "best_val_ce": self.best_val(),
                "code_version": self.code, "parameters": self.posterior.net.num_parameters()}

    def shipped_checkpoint(self) -> ModelFile:
        """The EMA network's weights and the record (what :func:`pipeline.crystals.flow.load_crystal_model` reads)."""
        return ModelFile(state_dict=self.ema.net.state_dict(), record=self.record())


def train_crystals(cfg: CrystalTrainConfig, out_dir: str | os.PathLike, *, hardware: "DeviceSettings | None" = None,
                   restart: bool = False, progress: bool = True, snapshots: bool = False) -> TrainedModel:
    """Train (or resume training of) a crystal generator; returns the paths of the safetensors models.

    ``out_dir`` is a run folder (:func:`pipeline.common.run.open_run`) keyed by the config (all but
    ``max_steps``, so a resume may train longer) and the training file's bytes.
    ``OUT/lightning/last.ckpt`` is written every ``val_every`` steps and at the end and continued by
    a rerun; it is read tensors-only, and a file that is not is refused before any work. ``hardware``:
    accelerator, devices per node and nodes (DDP for more than one process; default one CPU process).
    ``snapshots`` keeps every validated EMA model as ``OUT/snapshots/step_<step>.safetensors``.
    """

    hardware = DeviceSettings.of(hardware, "train(hardware=...)")
    settings = {k: v for k, v in asdict(cfg).items() if k != "max_steps"}  # a resume may train longer
    if not cfg.coords().metric:  # runs from before the metric coordinate path resume unchanged
        settings = {k: v for k, v in settings.items() if not k.startswith("coord_")}
    inputs = fingerprint([dataset_file(cfg)])
    # bad training data or an unsafe resume state is refused before the folder is opened (nothing changes)
    data = None if is_ddp_worker() else CrystalDataModule(cfg, progress=progress)
    with training_run(out_dir, "train-crystals", settings, inputs, asdict(cfg), restart) as out:
        return _train(cfg, out, hardware.trainer_kwargs(), progress, data, snapshots)


def dataset_file(cfg: CrystalTrainConfig) -> Path:
    """The CSV a config trains on (a named data set split or a path); InputError when it is not there."""
    from structures.data import CRYSTAL_DATASETS, resolve_dataset

    path = Path(resolve_dataset(cfg.dataset, cfg.split)) if cfg.dataset in CRYSTAL_DATASETS else Path(cfg.dataset)
    if not path.is_file():
        raise InputError(f"training data not found: {path}; give a data set name "
                         f"({', '.join(CRYSTAL_DATASETS)}) or a CDVAE-format CSV")
    return path


def _train(cfg: CrystalTrainConfig, out: Path, launch: dict[str, Any], progress: bool,
           data: "CrystalDataModule | None" = None, snapshots: bool = False) -> TrainedModel:
    quiet_lightning(progress)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    data = data or CrystalDataModule(cfg, progress=progress)
    if data.data.skipped:  # reported, not silent: the rows and reasons also go into the model record
        row, why = next(iter(data.data.skipped.items()))
        n_skip = len(data.data.skipped)
        print(f"genmatch: warning: skipped {n_skip} of {n_skip + len(data.data)} rows of {data.info['file']} "
              f"(e.g. row {row}: {why[:120]})", file=sys.stderr)
    module = CrystalFlowModule(cfg, data.info)
    fit(module, data, out, dict(**launch, max_steps=cfg.max_steps, gradient_clip_val=cfg.grad_clip,
                                val_check_interval=cfg.val_every, enable_progress_bar=progress,
                                use_distributed_sampler=True), snapshots)
    return TrainedModel.of(out, module)

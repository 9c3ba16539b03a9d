"""Training the protein co-design model (MultiFlow's objective) in PyTorch Lightning.

Each step: draw x_t from the protein flow's product path, the path object of the sampler's flow
(:mod:`pipeline.proteins.train.interpolant`: separate structure and sequence times with 10 % folding / 10 %
inverse-folding examples; the source draw coupled with the data: centred Gaussian x 10 Angstrom translations with
minibatch OT, IGSO(3) sigma 1.5 rotations, MASK tokens; then CondOT, geodesic and mask paths), with probability
0.5 feed a no-grad first prediction back as self-conditioning, and minimise MultiFlow's losses
(:mod:`pipeline.proteins.train.losses`: translation and rotation vector fields, backbone-atom and pairwise-
distance auxiliary losses, sequence cross-entropy), averaged over the chains of the batch.

Data: the embedded backbone set (or an npz of its schema, or a folder of PDB / mmCIF files), chains in
``[min_length, max_length]``, split into train / validation on near-identity groups
(:meth:`structures.proteins.dataset.ProteinDataset.split`); batches of similar length under a padded-
residue budget; chains longer than ``crop`` are cut to a random contiguous window (validation: the
centre window). Validation: the EMA network's loss on a fixed time grid with fixed noise (structure and
sequence time equal, self-conditioning on, as in sampling). Shared machinery (AdamW + warm-up + cosine,
EMA, gradient clipping, curves, safetensors export, resume, DDP, run folder): :mod:`pipeline.common.training`.
``OUT/model.safetensors`` / ``OUT/best.safetensors`` load with
:func:`pipeline.proteins.network.checkpoint.load_protein_network`.
"""

from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from torch import Tensor

from manifolds.discrete import SCHEDULER_NAMES, SchedulerName
from pipeline.common.model_file import ModelFile
from pipeline.common.run import fingerprint
from pipeline.proteins.network import CONFIGS, ProteinNetwork, ProteinNetworkConfig, ProteinNetworkOutput
from pipeline.proteins.network.checkpoint import KIND, load_protein_network
from pipeline.proteins.network.config import preset_name
from pipeline.common.training import (DeviceSettings, OptimSettings, TrainingModule, TrainedModel, fit, is_ddp_worker,
                                   quiet_lightning, training_run)
from pipeline.proteins.train.data import ProteinDataModule, dataset_files
from pipeline.proteins.train.interpolant import Interpolant, InterpolantConfig, NoisyProteins, ProteinTarget
from pipeline.proteins.train.losses import LossWeights, protein_losses
from structures.cache import file_sha256
from structures.errors import InputError
from structures.validate import check_float

VAL_TERMS = ("trans", "rots", "aux", "aatypes")


@dataclass
class ProteinTrainConfig:
    """Everything that defines a protein training run (stored in the checkpoint record)."""

    dataset: str = "proteins"  # the embedded backbone set, an npz of its schema, or a folder of PDB / mmCIF files
    network: str | dict = "small"  # a preset of pipeline.proteins.network.CONFIGS or a config dict
    init: str | None = None  # start from this MultiFlow .ckpt or genmatch .safetensors (its config wins)
    min_length: int = 60
    max_length: int | None = 128
    crop: int | None = None  # random contiguous window of longer chains (None: whole chains)
    max_residues: int = 2048  # padded residues per batch
    max_batch_size: int = 64
    # interpolant (MultiFlow pdb_codesign)
    min_t: float = 0.01
    separate_t: bool = True
    forward_fold_prob: float = 0.1
    inverse_fold_prob: float = 0.1
    batch_ot: bool = True
    rot_prior_sigma: float = 1.5
    seq_scheduler: SchedulerName = "linear"
    self_condition_prob: float = 0.5
    aux_weight: float = 1.0
    motif_prob: float = 0.0  # share of motif examples (amortised motif method; the network gains a motif input)
    # optimisation
    lr: float = 5e-4
    weight_decay: float = 0.0
    warmup_steps: int = 200
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    max_steps: int = 20_000
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    val_fraction: float = 0.05
    val_every: int = 500
    val_times: int = 2  # stratified time points per validation chain
    seed: int = 0
    limit: int | None = None  # only the first N chains that pass the length filter (tests, smoke runs)

    def network_config(self) -> ProteinNetworkConfig:
        if isinstance(self.network, dict):
            return ProteinNetworkConfig.from_dict(self.network)
        if self.network not in CONFIGS:
            raise ValueError(f"unknown network preset {self.network!r}; choose one of {', '.join(CONFIGS)}")
        return replace(CONFIGS[self.network], motif_input=True) if self.motif_prob > 0 else CONFIGS[self.network]

    def interpolant(self) -> InterpolantConfig:
        names = {f.name for f in fields(InterpolantConfig)}
        return InterpolantConfig(**{k: v for k, v in asdict(self).items() if k in names},
                                 trans_prior_scale=10.0)

    def loss_weights(self) -> LossWeights:
        return LossWeights(aux_weight=self.aux_weight)

    def optim(self) -> OptimSettings:
        return OptimSettings(lr=self.lr, weight_decay=self.weight_decay, warmup_steps=self.warmup_steps,
                             lr_schedule=self.lr_schedule, max_steps=self.max_steps, ema_decay=self.ema_decay)

    def __post_init__(self) -> None:
        """Checked once, when made (also by ``dataclasses.replace`` and when a record is read back)."""
        try:
            self.validate()
        except InputError:
            raise
        except ValueError as exc:
            raise InputError(f"ProteinTrainConfig: {exc}") from None

    def validate(self) -> None:
        self.interpolant().validate()
        if self.seq_scheduler not in SCHEDULER_NAMES:
            raise ValueError(f"unknown scheduler {self.seq_scheduler!r}; choose one of {', '.join(SCHEDULER_NAMES)}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        for name in ("min_length", "max_residues", "max_batch_size", "max_steps", "val_every", "val_times"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_length is not None and self.max_length < self.min_length:
            raise ValueError(f"max_length {self.max_length} is below min_length {self.min_length}")
        longest = self.crop or self.max_length
        if self.crop is not None and self.crop < 1:
            raise ValueError(f"crop must be >= 1, got {self.crop}")
        if longest is None or longest > self.max_residues:
            raise ValueError(f"max_residues {self.max_residues} must hold the longest chain: set max_length or "
                             f"crop to at most {self.max_residues}")
        if self.init is None:
            self.network_config()


class ProteinFlowModule(TrainingModule):
    """The protein network, its EMA copy and MultiFlow's objective."""

    def __init__(self, cfg: ProteinTrainConfig, dataset_info: dict[str, Any] | None = None,
                 init: ProteinNetwork | None = None, init_info: dict[str, Any] | None = None) -> None:
        super().__init__(cfg.optim(), n_val_terms=2 + len(VAL_TERMS))  # cfg was checked when it was made
        self.cfg, self.icfg, self.weights = cfg, cfg.interpolant(), cfg.loss_weights()
        self.interpolant = Interpolant.build(self.icfg)  # x_t from the flow's product path (training and validation)
        self.dataset_info, self.init_info = dataset_info or {}, init_info
        torch.manual_seed(cfg.seed)
        self.net = init.train() if init is not None else ProteinNetwork(cfg.network_config())
        if cfg.motif_prob > 0:
            self.net = self.net.with_motif_input()  # zero-initialised: the init network's predictions to start
        self.ema = copy.deepcopy(self.net).requires_grad_(False).eval()
        self.val_terms: list[list[float]] = []  # [step, trans, rots, aux, aatypes]

    def ema_pair(self) -> tuple[torch.nn.Module, torch.nn.Module]:
        return self.ema, self.net

    def predict(self, net: ProteinNetwork, noisy: NoisyProteins, self_condition: bool) -> ProteinNetworkOutput:
        """The clean-state prediction, optionally after a no-grad first pass fed back as self-conditioning."""
        if not self_condition:
            return net(noisy.network_input())
        with torch.no_grad():
            first = net(noisy.network_input())
        return net(noisy.network_input(trans_sc=first.pred_trans.detach(), aatypes_sc=first.pred_logits.detach()))

    def training_step(self, target: ProteinTarget, batch_idx: int) -> Tensor:
        noisy = self.interpolant.sample(target)
        sc = bool(torch.rand(()) < self.icfg.self_condition_prob)
        terms = protein_losses(noisy, self.predict(self.net, noisy, sc), self.weights)
        loss = terms.total.mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at step {self.global_step}: {terms.means()}")
        b = target.res_mask.shape[0]
        self.note_train_loss(loss, b)
        for k, v in terms.means().items():
            self.log(f"train_{k}", v, batch_size=b)
        return loss

    @torch.no_grad()
    def validation_step(self, target: ProteinTarget, batch_idx: int) -> None:
        k, b = self.cfg.val_times, target.res_mask.shape[0]
        g = torch.Generator(device=target.trans_1.device).manual_seed(self.cfg.seed * 1_000_003 + batch_idx)
        lo, hi = self.icfg.min_t, 1 - self.icfg.min_t
        for j in range(k):
            t = lo + (hi - lo) * (j + torch.rand(b, generator=g, device=target.trans_1.device)) / k  # [B]
            noisy = self.interpolant.sample(target, g, times=(t, t.clone()), motifs=False)
            terms = protein_losses(noisy, self.predict(self.ema, noisy, True), self.weights)
            parts = [terms.total.sum(), torch.tensor(float(b))] + [getattr(terms, n).sum() for n in VAL_TERMS]
            self.val_totals += torch.stack([p.double().cpu() for p in parts]).to(self.val_totals.device) / k

    def on_validation_epoch_end(self) -> None:
        total = self.reduced_val_totals()
        n = total[1].clamp_min(1)
        if self.finish_validation(float(total[0] / n), "val_loss"):
            self.val_terms.append([int(self.global_step)] + [float(x / n) for x in total[2:]])

    def extra_state(self) -> dict[str, Any]:
        return {"val_terms": self.val_terms}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.val_terms = [list(r) for r in state.get("val_terms", [])]

    def record(self) -> dict[str, Any]:
        c = self.cfg
        return {"kind": KIND, "config": self.net.cfg.to_dict(),
                "network_preset": preset_name(replace(self.net.cfg, motif_input=False)),
                "flow": {"objective": "MultiFlow (Campbell et al. 2024)", "interpolant": asdict(self.icfg),
                         "losses": asdict(self.weights), "sequence": f"masking CTMC, {c.seq_scheduler} kappa_t",
                         "residue_order": "ARNDCQEGHILKMFPSTWYV (20 = mask)"},
                "weights": "ema", "training": {**asdict(c), **self.training_fields()},
                "init": self.init_info, "dataset": self.dataset_info,
                "validation_curve": self.val_curve, "validation_terms": ["step", *VAL_TERMS],
                "validation_term_curve": self.val_terms, "train_curve": self.train_curve,
                "best_val_loss": self.best_val(), "code_version": self.code,
                "parameters": self.net.num_parameters()}

    def shipped_checkpoint(self) -> ModelFile:
        """EMA weights + record (the layout of ``save_protein_checkpoint``)."""
        return ModelFile(state_dict=self.ema.state_dict(), record=self.record())


def _init_network(cfg: ProteinTrainConfig) -> tuple[ProteinNetwork | None, dict[str, Any] | None]:
    if cfg.init is None:
        return None, None
    path = Path(cfg.init)
    net = load_protein_network(path)  # CheckpointError (exit 2) names what is wrong
    return net, {"path": str(path), "file": path.name, "sha256": file_sha256(path),
                 "config": preset_name(net.cfg) or "custom"}


def check_training_memory(cfg: ProteinTrainConfig, data: ProteinDataModule, net_cfg: ProteinNetworkConfig,
                          hardware: DeviceSettings, max_memory_gb: float | None) -> None:
    """Refuse (:class:`InputError`) a run whose heaviest batch would not fit in memory: B x L^2 pairs at the longest
    (cropped) chain under ``max_residues`` / ``max_batch_size``, with the activations a backward pass keeps
    (:func:`pipeline.proteins.memory.network_bytes`), once per process on a CPU."""
    from pipeline.proteins.memory import check_fits, network_bytes

    longest = int(max(max(data.train_set.lengths), max(data.val_set.lengths)))
    longest = min(longest, cfg.crop) if cfg.crop is not None else longest
    pairs = max(longest ** 2, min(cfg.max_batch_size * longest ** 2, cfg.max_residues * longest))
    gpu = hardware.accelerator == "gpu" or (hardware.accelerator == "auto" and torch.cuda.is_available())
    procs = 1 if gpu else hardware.devices
    check_fits(network_bytes(net_cfg, pairs, training=True) * procs, max_memory_gb, "cuda" if gpu else "cpu",
               f"train: batches of chains up to {longest} residues" + (f" in {procs} processes" if procs > 1 else ""),
               "lower --max-length, --crop or --max-residues")


def train_proteins(cfg: ProteinTrainConfig, out_dir: str | os.PathLike, *, hardware: DeviceSettings | None = None,
                   restart: bool = False, progress: bool = True, snapshots: bool = False,
                   max_memory_gb: float | None = None) -> TrainedModel:
    """Train (or resume training of) the protein model; returns the paths of the safetensors models.

    ``out_dir`` is a run folder keyed by the config (all but ``max_steps``: a resume may train longer), the
    data files' bytes and the ``init`` file's bytes. Bad data, a bad ``init`` file or an unsafe resume
    state are refused (:class:`InputError`) before the folder is created or changed. ``hardware``: accelerator,
    devices and nodes (:class:`DeviceSettings`; default one CPU process); ``snapshots``: keep every validated
    model. Torch threads are the caller's (:func:`workflows.proteins.train` sets them for the call).
    ``max_memory_gb``: the memory a training step may need (None: what is available now); a run estimated to
    need more is refused before the folder is touched (:func:`check_training_memory`).
    """
    hardware = DeviceSettings.of(hardware, "train_proteins(hardware=...)")
    settings = {k: v for k, v in asdict(cfg).items()  # motif_prob only when used: older runs resume
                if k != "max_steps" and not (k == "motif_prob" and v == 0)}
    if cfg.init is not None and not Path(cfg.init).is_file():
        raise InputError(f"--init checkpoint not found: {cfg.init}; give a MultiFlow .ckpt or a genmatch "
                         ".safetensors file")
    inputs = fingerprint([*dataset_files(cfg.dataset), *([Path(cfg.init)] if cfg.init else [])])
    data, init = (None, (None, None)) if is_ddp_worker() else (ProteinDataModule(cfg), _init_network(cfg))
    if data is not None:
        if max_memory_gb is not None:
            check_float("train_proteins(max_memory_gb=...)", max_memory_gb, 0.0, strict_minimum=True)
        check_training_memory(cfg, data, init[0].cfg if init[0] is not None else cfg.network_config(), hardware,
                              max_memory_gb)
    with training_run(out_dir, "train-proteins", settings, inputs, asdict(cfg), restart) as out:
        quiet_lightning(progress)
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        data = data or ProteinDataModule(cfg)
        net, info = init if init[0] is not None else _init_network(cfg)
        module = ProteinFlowModule(cfg, data.info, net, info)
        fit(module, data, out, dict(**hardware.trainer_kwargs(), max_steps=cfg.max_steps,
                                    gradient_clip_val=cfg.grad_clip, val_check_interval=cfg.val_every,
                                    enable_progress_bar=progress, use_distributed_sampler=False), snapshots)
        return TrainedModel.of(out, module)


__all__ = ["DeviceSettings", "ProteinFlowModule", "ProteinTrainConfig", "TrainedModel", "train_proteins"]

"""What every genmatch trainer shares: EMA, learning-rate schedule, curves, export, resume, run folders.

- :class:`TrainingModule`: a LightningModule base with AdamW + linear warm-up (then constant or cosine,
  :func:`lr_factor`), an exponential moving average of the weights (:func:`ema_update`, the shipped
  model), the validation / training curves, wall-clock time, and their place in the resume state.
- :class:`SafetensorsExport`: after each validation ``OUT/model.safetensors`` (latest EMA weights + record),
  ``OUT/best.safetensors`` (best validation loss) and the resume state ``OUT/lightning/last.ckpt``
  (written beside and renamed, so never half a file; every DDP rank calls, rank 0 writes).
- :func:`check_resume_state`: a resume file is read tensors-only, or refused before any work.
- :func:`training_run`: DDP rank 0 opens the run folder (:func:`pipeline.common.run.open_run`, with its
  lock) for the whole run; the workers Lightning starts only train.
- :func:`code_version`: genmatch's version and git commit for the record.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import lightning as L
import torch
from torch import Tensor, nn

from pipeline.common.model_file import ModelFile, save_model_file
from pipeline.common.io import write_json
from pipeline.common.run import open_run
from structures.errors import InputError
from structures.validate import check_choice, check_instance, check_int

LAST_CKPT = Path("lightning") / "last.ckpt"


def code_version() -> dict[str, str]:
    """genmatch's version and, in a git checkout, the commit (with ``-dirty`` for local changes)."""
    from structures.version import genmatch_version

    out = {"genmatch": genmatch_version()}
    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        out["git"] = rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def lr_factor(step: int, warmup_steps: int, max_steps: int, schedule: str) -> float:
    """Multiplier of the peak learning rate at optimizer step ``step``.

    Linear warm-up (step + 1) / warmup_steps; then 1 (``constant``) or a cosine from 1 down to 0.1 at
    ``max_steps`` (``cosine``): 0.1 + 0.9 (1 + cos(pi f)) / 2 with f the share of post-warm-up steps done.
    """
    warm = min(1.0, (step + 1) / max(1, warmup_steps))
    if schedule == "cosine" and step >= warmup_steps:
        frac = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))
    return warm


@torch.no_grad()
def ema_update(ema: nn.Module, live: nn.Module, decay: float, step: int) -> None:
    """theta_ema <- d theta_ema + (1 - d) theta with d = min(decay, (1 + step) / (10 + step)) (a warm start:
    early averages do not remember the random initialisation)."""
    d = min(decay, (1 + step) / (10 + step))
    for e, p in zip(ema.parameters(), live.parameters()):
        e.lerp_(p.detach(), 1.0 - d)


def check_resume_state(path: Path) -> None:
    """Refuse a resume file that cannot be read without unpickling arbitrary objects (or at all)."""
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types; the message's first line says which
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise InputError(f"{path}: the resume state cannot be read safely ({first}); delete it or pass "
                         "--restart") from None


def is_ddp_worker() -> bool:
    """True in a DDP process that Lightning started (local rank > 0 or node rank > 0)."""
    return bool(int(os.environ.get("LOCAL_RANK", "0")) or int(os.environ.get("NODE_RANK", "0")))


@contextlib.contextmanager
def training_run(out_dir: str | os.PathLike, kind: str, settings: dict[str, Any], inputs: str,
                 config: dict[str, Any], restart: bool) -> Iterator[Path]:
    """The run folder of a training run, for the whole run.

    Rank 0 refuses an unsafe ``OUT/lightning/last.ckpt`` before touching the folder, opens it with
    :func:`open_run` (resume / refuse / lock) and writes ``train_config.json``. A DDP worker (rank > 0)
    gets the path only: rank 0 holds the folder and its lock while the workers run.
    """
    if is_ddp_worker():
        yield Path(out_dir)
        return
    last = Path(out_dir) / LAST_CKPT
    if not restart and last.is_file():
        check_resume_state(last)
    with open_run(out_dir, kind, settings, inputs, restart=restart) as run:
        write_json(run.path / "train_config.json", config)
        yield run.path


def quiet_lightning(progress: bool) -> None:
    """No Lightning banners when not showing progress; silence warnings that do not apply to our modules."""
    if not progress:
        logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")  # the EMA copy is eval on purpose
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


@dataclass
class OptimSettings:
    """The optimisation part of a training config (AdamW, warm-up + schedule, EMA)."""

    lr: float
    weight_decay: float
    warmup_steps: int
    lr_schedule: str
    max_steps: int
    ema_decay: float


class TrainingModule(L.LightningModule):
    """Base of the trainers' Lightning modules: optimizer and schedule, EMA, curves, wall time, resume.

    Subclasses set :attr:`live` / :attr:`shadow` (the trained module and its EMA copy) through
    :meth:`ema_pair`, implement ``training_step`` / ``validation_step`` (adding to :attr:`val_totals`:
    ``[sum of per-item losses, count, extra sums ...]``), :meth:`record` and :meth:`shipped_checkpoint`.
    """

    def __init__(self, optim: OptimSettings, n_val_terms: int = 2) -> None:
        super().__init__()
        self.optim = optim
        self.val_curve: list[list[float]] = []  # [step, validation loss]
        self.train_curve: list[list[float]] = []  # [step, mean train loss since the last validation]
        self._train_sum, self._train_n = 0.0, 0
        self._n_val_terms = n_val_terms
        self.val_totals = torch.zeros(n_val_terms, dtype=torch.float64)
        self._wall = 0.0
        self._t_start = time.monotonic()
        self.code = code_version()  # of the code this process runs (HEAD may move while it trains)

    def ema_pair(self) -> tuple[nn.Module, nn.Module]:
        """(EMA copy, trained module)."""
        raise NotImplementedError

    def trainable_parameters(self) -> Iterable[Tensor]:
        return self.ema_pair()[1].parameters()

    def configure_optimizers(self) -> dict[str, Any]:
        o = self.optim
        opt = torch.optim.AdamW(self.trainable_parameters(), lr=o.lr, weight_decay=o.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: lr_factor(step, o.warmup_steps, o.max_steps, o.lr_schedule))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def note_train_loss(self, loss: Tensor, batch_size: int) -> None:
        """Accumulate the train curve and log ``train_loss``."""
        self._train_sum += float(loss.detach())
        self._train_n += 1
        self.log("train_loss", loss.detach(), prog_bar=True, batch_size=batch_size)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        ema, live = self.ema_pair()
        ema_update(ema, live, self.optim.ema_decay, int(self.global_step))

    def on_validation_epoch_start(self) -> None:
        self.val_totals = torch.zeros(self._n_val_terms, dtype=torch.float64, device=self.device)

    def reduced_val_totals(self) -> Tensor:
        """:attr:`val_totals` summed over all DDP ranks."""
        if self.trainer.world_size > 1:
            return self.trainer.strategy.reduce(self.val_totals, reduce_op="sum")
        return self.val_totals

    def finish_validation(self, value: float, name: str = "val_loss") -> bool:
        """Log ``value`` and append it to the curves (not during the sanity check); True when appended."""
        self.log(name, value, prog_bar=True, sync_dist=False)
        if self.trainer.sanity_checking:
            return False
        step = int(self.global_step)
        appended = not self.val_curve or self.val_curve[-1][0] != step
        if appended:
            self.val_curve.append([step, value])
            if self._train_n:
                self.train_curve.append([step, self._train_sum / self._train_n])
        self._train_sum, self._train_n = 0.0, 0
        return appended

    def best_val(self) -> dict[str, float] | None:
        best = min(self.val_curve, key=lambda r: r[1]) if self.val_curve else None
        return None if best is None else {"step": best[0], "value": best[1]}

    def wall_seconds(self) -> float:
        return self._wall + (time.monotonic() - self._t_start)

    def training_fields(self) -> dict[str, Any]:
        """step, epoch, wall time and world size for the record's ``training`` section."""
        return {"step": int(self.global_step), "epoch": int(self.current_epoch),
                "wall_s": round(self.wall_seconds(), 1),
                "world_size": int(self.trainer.world_size) if self._trainer else 1}

    def extra_state(self) -> dict[str, Any]:
        """More plain data for the resume state (subclasses extend)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`extra_state`."""

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["genmatch"] = {"val_curve": self.val_curve, "train_curve": self.train_curve,
                                  "wall_s": self.wall_seconds(), **self.extra_state()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        g = checkpoint.get("genmatch", {})
        self.val_curve = [list(r) for r in g.get("val_curve", [])]
        self.train_curve = [list(r) for r in g.get("train_curve", [])]
        self._wall, self._t_start = float(g.get("wall_s", 0.0)), time.monotonic()
        self.load_extra_state(g)

    def record(self) -> dict[str, Any]:
        raise NotImplementedError

    def shipped_checkpoint(self) -> ModelFile:
        """The EMA weights and the record: what ``OUT/model.safetensors`` holds."""
        raise NotImplementedError


class SafetensorsExport(L.Callback):
    """After each validation: ``OUT/model.safetensors`` (latest EMA), ``OUT/best.safetensors`` (best val) and
    the resume state ``OUT/lightning/last.ckpt``; with ``snapshots`` also ``OUT/snapshots/step_<step>.safetensors``
    (every validated EMA model, kept: the held-out loss need not rank models by sample quality)."""

    def __init__(self, out_dir: Path, snapshots: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.snapshots = snapshots

    def on_validation_end(self, trainer: L.Trainer, module: TrainingModule) -> None:  # type: ignore[override]
        if trainer.sanity_checking or not module.val_curve or trainer.state.fn != "fit":
            return
        if trainer.is_global_zero:
            ckpt = module.shipped_checkpoint()
            save_model_file(self.out_dir / "model.safetensors", ckpt)
            if module.val_curve[-1][1] <= min(v for _, v in module.val_curve):
                save_model_file(self.out_dir / "best.safetensors", ckpt)
            if self.snapshots:
                (self.out_dir / "snapshots").mkdir(exist_ok=True)
                save_model_file(self.out_dir / "snapshots" / f"step_{module.global_step:07d}.safetensors", ckpt)
        # resume state: all ranks call (rank 0 writes); written beside and renamed, so never half a file
        last = self.out_dir / LAST_CKPT
        tmp = last.with_name(".last.ckpt.tmp")
        trainer.save_checkpoint(tmp, weights_only=False)
        if trainer.is_global_zero:
            os.replace(tmp, last)
        trainer.strategy.barrier("genmatch.last_ckpt")


def fit(module: TrainingModule, data: L.LightningDataModule, out: Path, trainer_kw: dict[str, Any],
        snapshots: bool = False) -> None:
    """``trainer.fit`` from ``OUT/lightning/last.ckpt`` when present (read tensors-only), then one more
    validation + export if the run ended between validations. ``trainer_kw`` go to :class:`L.Trainer`;
    ``snapshots``: keep every validated model (:class:`SafetensorsExport`)."""
    last = out / LAST_CKPT
    trainer = L.Trainer(enable_checkpointing=False, logger=False, callbacks=[SafetensorsExport(out, snapshots)],
                        enable_model_summary=False, num_sanity_val_steps=0, check_val_every_n_epoch=None,
                        deterministic=False, **trainer_kw)
    trainer.fit(module, datamodule=data, ckpt_path=str(last) if last.is_file() else None,
                weights_only=True)  # resume state is tensors and plain containers: no arbitrary unpickling
    if not module.val_curve or module.val_curve[-1][0] != module.global_step:
        trainer.validate(module, datamodule=data, verbose=False)
        trainer.state.fn = "fit"
        SafetensorsExport(out, snapshots).on_validation_end(trainer, module)


@dataclass
class TrainedModel:
    """What a training run (crystals or proteins) leaves: ``model_path`` (the latest EMA model, ``.safetensors``,
    usable as ``model=`` of ``generate``), ``best_path`` (the one with the best validation loss), ``record`` (the
    model record: config, data set, validation curve) and the run folder ``out_dir``."""

    out_dir: Path
    model_path: Path
    best_path: Path
    record: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, out: Path, module: TrainingModule) -> "TrainedModel":
        return cls(out_dir=out, model_path=out / "model.safetensors", best_path=out / "best.safetensors",
                   record=module.record())


#: Lightning accelerators a training run may ask for
ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "auto")


@dataclass(frozen=True)
class DeviceSettings:
    """Where a training run computes (Lightning's ``accelerator``, ``devices`` per node and ``num_nodes``; DDP when
    devices x nodes > 1); validated at construction. Not part of the run folder's key (the config is)."""

    accelerator: str = "cpu"
    devices: int = 1
    num_nodes: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "accelerator", check_choice("DeviceSettings.accelerator", self.accelerator,
                                                             ACCELERATORS))
        check_int("DeviceSettings.devices", self.devices, minimum=1)
        check_int("DeviceSettings.num_nodes", self.num_nodes, minimum=1)

    @classmethod
    def of(cls, hardware: "DeviceSettings | None", name: str) -> "DeviceSettings":
        """``hardware``, or one CPU process for None; anything else raises InputError naming ``name``."""
        if hardware is None:
            return cls()
        return check_instance(name, hardware, cls, "a DeviceSettings")

    def trainer_kwargs(self) -> dict[str, Any]:
        """The :class:`lightning.Trainer` arguments (strategy ``ddp`` for more than one process)."""
        strategy = "ddp" if self.devices * self.num_nodes > 1 else "auto"
        return dict(accelerator=self.accelerator, devices=self.devices, num_nodes=self.num_nodes, strategy=strategy)

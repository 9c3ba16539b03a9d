"""Training a property predictor p_phi(y | x_t, t) on the generator's noisy token sequences.

Objective: draw a training crystal x_1 with its properties y, t ~ U[0, 1] (t = 1 exactly with probability
``clean_fraction``: the clean structures a judge sees), x_t ~ p_t(. | x_1) on the path of the generator the
predictor will guide (:func:`pipeline.crystals.flow.make_path` with that model's scheduler and coordinate path, so
the predictor's t is the sampler's t), and minimise the heteroscedastic Gaussian negative log-likelihood of the
standardised targets, mean over properties and the batch:

    L = 1/2 ((y - mu) / sigma - m)^2 / s^2 + log s,    (m, s) = the network's standardised mean and std.

With ``augment`` each x_1 gets a random origin shift and inversion first (exact on the token grid; properties are
invariant); by default exactly when the generator was trained so, i.e. on the origins its samples have.
The predicted std has a floor (``min_std`` training-target stds): without it, the many exact zeros of a property such
as Perov-5's ``dir_gap`` drive the std to zero, whose NLL gradients then swamp the other properties and whose
over-confidence would over-steer guidance. AdamW, linear warm-up then a cosine to 0.1 lr at ``steps`` (or a constant lr), gradient clipping at 1, an
EMA of the weights (shipped). Batches are drawn with a generator seeded by (seed, step), so an interrupted run
resumes with the same numbers (a larger ``steps`` continues too, on the cosine stretched to the new end).

The run folder (:func:`pipeline.common.run.open_run`, keyed by every setting but ``steps``, the CSV's and the
generator file's bytes) holds ``state.pt`` (resume state, tensors only, every ``eval_every`` steps),
``predictor.safetensors`` and ``predictor.json`` (the record). A rerun resumes; a finished run returns its model.
"""

from __future__ import annotations

import copy
import math
import os
import subprocess
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from pipeline.common.io import write_json
from pipeline.common.model_file import ModelFile, load_model_file, save_model_file
from pipeline.common.run import fingerprint, open_run
from pipeline.crystals.flow import DEFAULT_MODELS, CoordinatePath, resolve_model_path, trim_padding
from pipeline.crystals.predictor.data import DataSource, PredictorData, load_predictor_data, noisy_tokens, resolve_data
from pipeline.crystals.predictor.evaluate import heldout_errors, mean_nll
from pipeline.crystals.predictor.model import KIND
from pipeline.crystals.predictor.network import CrystalPredictor, PredictorNetConfig
from structures.atomic import atomic_path
from structures.cache import file_sha256
from structures.crystals.tokens import transform_fractions
from structures.errors import InputError
from structures.validate import check_bool, check_choice, check_float, check_instance, check_int

__all__ = ["PredictorTrainConfig", "TrainedPredictor", "train_predictor"]

STATE_FILE = "state.pt"
MODEL_FILE = "predictor.safetensors"


@dataclass(frozen=True)
class PredictorTrainConfig:
    """Everything that defines a predictor training run (stored in the record); validated once, when made."""

    data: str  # a data set split (perov_5:val) or a CDVAE-format CSV path
    properties: tuple[str, ...]  # numeric columns of the CSV (heat_ref, dir_gap, energy_per_atom, band_gap, ...)
    model: str | None = None  # the generator whose path the predictor learns (default: the shipped one of the data set)
    steps: int = 2000
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    lr_schedule: str = "cosine"  # after the warm-up: cosine to 0.1 lr at ``steps``, or constant
    hidden: int = 64
    blocks: int = 3
    heads: int = 4
    dropout: float = 0.0  # in the transformer blocks
    min_std: float = 0.1  # floor of the predicted std in units of the training targets' std
    ema_decay: float = 0.995
    clean_fraction: float = 0.3  # share of training draws at t = 1 (the clean structure)
    augment: bool | None = None  # random origin shift + inversion of x_1 (None: as the generator was trained)
    holdout: float = 0.1  # held-out share of the data (a seeded split)
    eval_every: int = 250  # held-out NLL + resume state every N steps
    eval_draws: int = 4  # times per held-out crystal and noise level in the final table
    seed: int = 0
    limit: int | None = None  # only the first N rows of the CSV (tests, smoke runs)

    def __post_init__(self) -> None:
        name = type(self).__name__
        data = os.fspath(self.data) if isinstance(self.data, os.PathLike) else self.data
        object.__setattr__(self, "data", check_instance(f"{name}.data", data, str,
                                                        "a data set split such as 'perov_5:val' or a CSV path"))
        props = (self.properties,) if isinstance(self.properties, str) else self.properties
        if isinstance(props, (bytes, dict)) or not isinstance(props, Sequence) or not props:
            raise InputError(f"{name}.properties must be one or more column names such as 'heat_ref', got "
                             f"{self.properties!r}")
        props = tuple(check_instance(f"{name}.properties[{i}]", p, str, "a column name") for i, p in enumerate(props))
        if len(set(props)) != len(props) or any(not p.strip() for p in props):
            raise InputError(f"{name}.properties must be distinct, non-empty column names, got {list(props)}")
        object.__setattr__(self, "properties", props)
        if self.model is not None:
            model = os.fspath(self.model) if isinstance(self.model, os.PathLike) else self.model
            object.__setattr__(self, "model", check_instance(f"{name}.model", model, str,
                                                             "a generator name (perov_5, carbon_24) or file"))
        for f in ("steps", "batch_size", "hidden", "blocks", "heads", "eval_every", "eval_draws"):
            check_int(f"{name}.{f}", getattr(self, f), minimum=1)
        check_int(f"{name}.warmup_steps", self.warmup_steps, minimum=0)
        check_int(f"{name}.seed", self.seed, 0)
        if self.limit is not None:
            check_int(f"{name}.limit", self.limit, minimum=4)
        for f, low, high, strict in (("lr", 0.0, None, True), ("weight_decay", 0.0, None, False),
                                     ("ema_decay", 0.0, 1.0, False), ("clean_fraction", 0.0, 1.0, False),
                                     ("holdout", 0.0, 1.0, True), ("dropout", 0.0, 0.9, False),
                                     ("min_std", 0.0, None, True)):
            object.__setattr__(self, f, check_float(f"{name}.{f}", getattr(self, f), low, high, strict))
        for f in ("ema_decay", "holdout"):
            if getattr(self, f) >= 1.0:
                raise InputError(f"{name}.{f} must be below 1, got {getattr(self, f)}")
        if self.augment is not None:
            check_bool(f"{name}.augment", self.augment)
        object.__setattr__(self, "lr_schedule", check_choice(f"{name}.lr_schedule", self.lr_schedule,
                                                             ("cosine", "constant")))
        self.net_config()
        self.source()
        self.generator_file()

    def net_config(self) -> PredictorNetConfig:
        return PredictorNetConfig(n_properties=len(self.properties), hidden=self.hidden, blocks=self.blocks,
                                  heads=self.heads, min_std=self.min_std, dropout=self.dropout)

    def source(self) -> DataSource:
        return resolve_data(self.data, f"{type(self).__name__}.data")

    def generator_file(self) -> Path:
        """The generator model file whose path the predictor learns."""
        model = self.model
        if model is None:
            ds = self.source().name
            if ds not in DEFAULT_MODELS:
                raise InputError(f"{type(self).__name__}.model: no shipped generator for data set {ds!r}; give the "
                                 "generator the predictor will guide (--model FILE from 'genmatch train crystals')")
            model = ds
        return resolve_model_path(model)


@dataclass
class TrainedPredictor:
    """What a predictor run leaves: the run folder, ``OUT/predictor.safetensors`` and its record."""

    out_dir: Path
    model_path: Path
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def best_path(self) -> Path:  # the shape of pipeline.common.training.TrainedModel: one model here
        return self.model_path


def _generator_info(path: Path, name: str | None) -> dict[str, Any]:
    rec = load_model_file(path).record
    if rec.get("kind") != "crystal_dit":
        raise InputError(f"{path}: not a crystal generator (kind={rec.get('kind')!r}); give the generator the "
                         "predictor will guide")
    try:
        flow = dict(rec["flow"])
        CoordinatePath.from_record(flow).validate()
        max_atoms = int(rec["dataset"]["max_atoms"])
        scheduler = str(flow["scheduler"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: the generator record is incomplete ({type(exc).__name__}: {exc})") from None
    return {"model": name or path.name, "file": path.name, "sha256": file_sha256(path), "scheduler": scheduler,
            "flow": flow, "max_atoms": max_atoms, "dataset": rec.get("dataset", {}).get("name"),
            "augment": bool(rec.get("training", {}).get("augment", False))}


def _code_version() -> dict[str, str]:
    from structures.version import genmatch_version

    out = {"genmatch": genmatch_version()}
    try:
        out["git"] = subprocess.run(["git", "-C", str(Path(__file__).resolve().parents[3]), "rev-parse", "HEAD"],
                                    capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def _read_state(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        with warnings.catch_warnings():  # torch notes the pickle protocol of a file it then refuses
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types; the first line says which
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise InputError(f"{path}: the resume state cannot be read safely ({first}); delete it or pass "
                         "--restart") from None


def train_predictor(config: PredictorTrainConfig, out_dir: str | os.PathLike, *, restart: bool = False,
                    progress: bool = True) -> TrainedPredictor:
    """Train (or resume, or return the finished) predictor of ``config`` in the run folder ``out_dir``.

    Every input is checked (data set, columns, generator, resume state) before the folder is opened.
    """
    check_instance("train_predictor(config=...)", config, PredictorTrainConfig, "a PredictorTrainConfig")
    source, gen_path = config.source(), config.generator_file()
    gen = _generator_info(gen_path, config.model or source.name)
    data = load_predictor_data(source, config.properties, gen["max_atoms"], config.limit, progress)
    out = Path(out_dir)
    state = None if restart else _read_state(out / STATE_FILE)
    settings = {k: v for k, v in asdict(config).items() if k != "steps"}  # a resume may train longer
    with open_run(out, "train-predictor", settings, fingerprint([source.path, gen_path]), restart=restart) as run:
        if not run.resumed:
            state = None
        write_json(run.path / "train_config.json", asdict(config))
        done = run.path / MODEL_FILE
        if done.is_file() and state is not None:
            rec = load_model_file(done).record
            if rec.get("training", {}).get("step", -1) >= config.steps:
                return TrainedPredictor(run.path, done, rec)
        return _train(config, run.path, data, gen, state, progress)


def _lr_factor(step: int, warmup: int, total: int, schedule: str) -> float:
    """Linear warm-up, then 1 (``constant``) or a cosine from 1 to 0.1 at ``total`` (``cosine``)."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    frac = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))


def gaussian_nll(m: torch.Tensor, s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean over batch and properties of 1/2 ((y - m) / s)^2 + log s (standardised units, ``[B, P]`` each)."""
    return (0.5 * ((y - m) / s) ** 2 + torch.log(s)).mean()


def _draw_batch(cfg: PredictorTrainConfig, x: torch.Tensor, y: torch.Tensor, path: tuple[str, CoordinatePath],
                step: int, augment: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_t, t, y) of training step ``step``: a batch drawn with the generator seeded by (seed, step)."""
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    idx = torch.randint(x.shape[0], (cfg.batch_size,), generator=g)
    x1 = trim_padding(x[idx])  # [B, 6 + 4A']
    if augment:
        shift = torch.randint(0, 100, (x1.shape[0], 3), generator=g)
        x1 = transform_fractions(x1, shift, torch.rand(x1.shape[0], generator=g) < 0.5)
    t = torch.rand(x1.shape[0], generator=g)
    t = torch.where(torch.rand(x1.shape[0], generator=g) < cfg.clean_fraction, torch.ones_like(t), t)
    return noisy_tokens(x1, t, path[0], path[1], g), t, y[idx]


def _train(cfg: PredictorTrainConfig, out: Path, data: PredictorData, gen: dict[str, Any],
           state: dict[str, Any] | None, progress: bool) -> TrainedPredictor:
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    train_idx, held_idx = data.split(cfg.holdout, cfg.seed)
    y_train = data.targets[train_idx]  # [N, P] float64
    loc = y_train.mean(0)
    scale = y_train.std(0) if len(train_idx) > 1 else torch.ones_like(loc)
    scale = torch.where(scale > 1e-12, scale, torch.ones_like(scale))
    net = CrystalPredictor(cfg.net_config())
    net.set_standardisation(loc.float(), scale.float())
    ema = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, curve = 0, []
    if state is not None:
        net.load_state_dict(state["net"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        step, curve = int(state["step"]), [list(r) for r in state["curve"]]
    path = (gen["scheduler"], CoordinatePath.from_record(gen["flow"]))
    augment = gen["augment"] if cfg.augment is None else cfg.augment
    x_train, y_std = data.tokens[train_idx], ((y_train - loc) / scale).float()
    x_held, y_held = data.tokens[held_idx], data.targets[held_idx]
    wall = float(state["wall_s"]) if state is not None else 0.0
    t0, run_loss, n_loss = time.monotonic(), 0.0, 0
    bar = tqdm(total=cfg.steps, initial=min(step, cfg.steps), desc="train predictor", unit="step",
               disable=not progress)
    net.train()
    while step < cfg.steps:
        xt, t, y = _draw_batch(cfg, x_train, y_std, path, step, augment)
        for group in opt.param_groups:
            group["lr"] = cfg.lr * _lr_factor(step, cfg.warmup_steps, cfg.steps, cfg.lr_schedule)
        loss = gaussian_nll(*net.standardised(xt, t), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        d = min(cfg.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), net.parameters()):
                e.lerp_(p, 1.0 - d)
        step += 1
        run_loss, n_loss = run_loss + float(loss.detach()), n_loss + 1
        bar.update(1)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            table = heldout_errors(ema, x_held, y_held, cfg.properties, path, loc, draws=1, seed=cfg.seed)
            curve.append([step, run_loss / n_loss, mean_nll(table)])
            bar.set_postfix(train_nll=f"{curve[-1][1]:.3f}", heldout_nll=f"{curve[-1][2]:.3f}")
            run_loss, n_loss = 0.0, 0
            elapsed = wall + time.monotonic() - t0
            with atomic_path(out / STATE_FILE) as tmp:
                torch.save({"step": step, "net": net.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                            "curve": curve, "wall_s": elapsed}, tmp)
    bar.close()
    table = heldout_errors(ema, x_held, y_held, cfg.properties, path, loc, draws=cfg.eval_draws, seed=cfg.seed)
    wall += time.monotonic() - t0
    record = {
        "kind": KIND, "properties": list(cfg.properties), "network": cfg.net_config().to_dict(),
        "parameters": net.num_parameters(), "max_atoms": gen["max_atoms"],
        "flow": gen["flow"], "generator": {k: v for k, v in gen.items() if k != "flow"},
        "time": "t of the generator's path (its scheduler and coordinate path): the sampler's t when it samples "
                "with the generator's own scheduler",
        "standardisation": {p: {"mean": float(loc[j]), "std": float(scale[j])} for j, p in enumerate(cfg.properties)},
        "dataset": {**data.info, "n_train": len(train_idx), "n_heldout": len(held_idx)},
        "training": {**asdict(cfg), "augment": augment, "step": step, "wall_s": round(wall, 1),
                     "objective": "Gaussian NLL of the standardised targets"},
        "curve": {"columns": ["step", "train_nll", "heldout_nll"], "rows": curve},
        "heldout": table, "code_version": _code_version(),
    }
    model_path = save_model_file(out / MODEL_FILE, ModelFile(state_dict=ema.state_dict(), record=record))
    write_json(out / "predictor.json", load_model_file(model_path).record)
    return TrainedPredictor(out, model_path, load_model_file(model_path).record)

"""The crystal flow shared by training and sampling: KO-DFM on the KO E.2 token sequences.

* Path: the mixture path of KO eq. 2 with the mask source p = delta_MASK and the kinetic-optimal
  scheduler KO eq. 33, which for the mask source is kappa_t = sin^2(pi t / 2) (KO-DFM), or the
  polynomial kappa_t = t^3 (cubic) / kappa_t = t (linear: KO E.2's DFM baseline).
* Optionally (:class:`CoordinatePath` ``metric``) the fractional coordinates follow the metric-induced
  path KO eq. 27 on the ring of grid values instead (uniform source), the rest the mask path.
* Posterior: the permutation-invariant DiT (KO E.2) gives logits of p^theta_{1|t}(. | x_t) per
  position; :class:`CrystalPosterior` restricts them to the token kind each position may hold
  (:func:`structures.crystals.tokens.allowed_token_mask` without PAD: the atom count is fixed by the
  template, so real atom slots are never padding). Padded slots stay PAD and are masked out of
  attention and of the losses.
* :func:`load_crystal_model` reads a safetensors checkpoint (:mod:`pipeline.common.model_file`, no pickle)
  or an embedded default by name (``perov_5``, ``carbon_24``) from ``pipeline/models/``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from manifolds.discrete import (SCHEDULER_NAMES, BlockPath, DiscretePath, MetricPath, MixturePath, MixtureScheduler,
                                RatioPowerBeta, mask_source, matching_time, ring_distance, scheduler_by_name)
from pipeline.common.model_file import MODELS_DIR, load_model_file, load_state_dict_checked
from structures.errors import InputError
from pipeline.crystals.network import CONFIGS, CrystalDiT, CrystalDiTConfig
from structures.crystals.tokens import FRAC_OFFSET, MASK, PAD, VOCAB_SIZE, TokenKind, allowed_token_mask, position_kinds

#: fractional-coordinate tokens on the ring Z_100 (0.00 .. 0.99; the token of 1.00 is never produced by encoding)
N_RING = 100
FRAC_ONE = FRAC_OFFSET + N_RING

#: embedded default model per data set name (files in ``pipeline/models/``)
DEFAULT_MODELS = {"perov_5": "perov_5_small.safetensors", "carbon_24": "carbon_24_small.safetensors"}


@lru_cache(maxsize=None)
def make_scheduler(name: str) -> MixtureScheduler:
    """The scheduler ``name`` (one of :data:`manifolds.discrete.SCHEDULER_NAMES`) for the mask source of the crystal
    vocabulary (:func:`manifolds.discrete.scheduler_by_name`; ``kinetic_optimal`` is sin^2(pi t / 2) here). One
    shared, immutable instance per name: the sampler and the training loop ask for it at every step."""
    return scheduler_by_name(name, mask_source(VOCAB_SIZE, MASK))


def model_time(t: Tensor, train_scheduler: str, sample_scheduler: str) -> Tensor:
    """The time at which a model trained with ``train_scheduler`` sees the noise level of ``sample_scheduler`` at t
    (:func:`manifolds.discrete.matching_time`, KO appendix E.1). For the mask source the exact posterior does not
    depend on t at all, but the network was only trained on the (t, number masked) pairs of its own scheduler, so
    it is evaluated there. ``t`` ``[B]`` -> ``[B]``.
    """
    if train_scheduler == sample_scheduler:
        return t
    return matching_time(t, make_scheduler(sample_scheduler), make_scheduler(train_scheduler))


@dataclass(frozen=True)
class CoordinatePath:
    """How the fractional-coordinate tokens are noised.

    ``mask``: like every other token, the mask mixture path (KO eq. 2; KO-DFM, E.2). ``metric``: the
    metric-induced path KO eq. 27 on the ring of the 100 grid values, p_t(x | x1) = softmax_x(-beta_t d(x, x1))
    with d the ring distance / 50 (:func:`manifolds.discrete.ring_distance`) and beta_t = c (t / (1 - t))^a:
    uniform coordinates at t = 0 that concentrate around x1, so the network learns to move atoms by small steps
    instead of placing each from scratch. The other tokens keep the mask path (:class:`manifolds.discrete.BlockPath`).
    """

    kind: str = "mask"
    c: float = 5.0
    a: float = 1.0

    def validate(self) -> None:
        if self.kind not in ("mask", "metric"):
            raise ValueError(f"unknown coordinate path {self.kind!r}; choose mask or metric")
        if not (self.c > 0 and self.a > 0):
            raise ValueError(f"the coordinate beta_t needs c > 0 and a > 0, got c={self.c}, a={self.a}")

    @property
    def metric(self) -> bool:
        return self.kind == "metric"

    def record(self) -> dict[str, Any]:
        return {"path": "metric-induced (KO eq. 27)", "distance": "ring distance / 50 on 0.00..0.99",
                "beta": "c (t / (1 - t))^a", "c": self.c, "a": self.a}

    @classmethod
    def from_record(cls, flow: dict[str, Any]) -> "CoordinatePath":
        rec = flow.get("coordinates")
        return cls() if rec is None else cls("metric", float(rec["c"]), float(rec["a"]))


MASK_COORDINATES = CoordinatePath()


def make_path(scheduler: str, coords: CoordinatePath = MASK_COORDINATES) -> DiscretePath:
    """KO eq. 2 with the mask source on the 878-token crystal vocabulary; with metric coordinates, KO eq. 27 on
    the fractional-coordinate tokens (a :class:`manifolds.discrete.BlockPath`)."""
    mixture = MixturePath(mask_source(VOCAB_SIZE, MASK), make_scheduler(scheduler))
    if not coords.metric:
        return mixture
    return BlockPath(mixture, MetricPath(ring_distance(N_RING), RatioPowerBeta(coords.c, coords.a)), FRAC_OFFSET)


@lru_cache(maxsize=64)
def _allowed(max_atoms: int, ring: bool) -> Tensor:
    allowed = torch.from_numpy(allowed_token_mask(max_atoms))  # [6 + 4A, V]
    allowed[:, PAD] = False
    if ring:
        allowed[:, FRAC_ONE] = False
    return allowed


def allowed_tokens(max_atoms: int, device: torch.device | str = "cpu", ring: bool = False) -> Tensor:
    """``[6 + 4A, V]`` bool: the token ids of the right kind at each position (no PAD, no MASK; with ``ring``
    not the coordinate 1.00 either, which is 0.00 on the ring of a metric coordinate path)."""
    return _allowed(max_atoms, ring).to(device)


def coordinate_positions(max_atoms: int, device: torch.device | str = "cpu") -> Tensor:
    """``[6 + 4A]`` bool: the fractional-coordinate positions (3 per atom)."""
    return torch.from_numpy(position_kinds(max_atoms) == TokenKind.FRAC).to(device)


def atom_mask_of(tokens: Tensor) -> Tensor:
    """``[B, 6 + 4A]`` tokens -> ``[B, A]`` bool, True where an atom slot is not padding."""
    return tokens[:, 6::4] != PAD


def token_mask_of(atom_mask: Tensor) -> Tensor:
    """``[B, A]`` atom mask -> ``[B, 6 + 4A]``: the 6 lattice tokens and the 4 tokens of each real atom."""
    B = atom_mask.shape[0]
    lattice = torch.ones(B, 6, dtype=torch.bool, device=atom_mask.device)
    return torch.cat([lattice, atom_mask.repeat_interleave(4, dim=1)], dim=1)


def trim_padding(tokens: Tensor) -> Tensor:
    """Drop trailing atom slots that are padding in every row (atoms are packed first): ``[B, 6 + 4A']``."""
    n = int(atom_mask_of(tokens).sum(1).max()) if tokens.shape[0] else 0
    return tokens[:, : 6 + 4 * max(n, 1)]


class CrystalPosterior(nn.Module):
    """p^theta_{1|t}(. | x_t) as logits ``[B, 6 + 4A, V]`` with tokens of the wrong kind at -inf (real positions)."""

    def __init__(self, net: CrystalDiT, ring: bool = False) -> None:
        super().__init__()
        self.net = net
        self.ring = ring  # metric coordinate path: the coordinate 1.00 is 0.00 and never a target

    def forward(self, xt: Tensor, t: Tensor, atom_mask: Tensor | None = None) -> Tensor:
        # xt [B, 6 + 4A] long, t [B], atom_mask [B, A] bool
        if atom_mask is None:
            atom_mask = atom_mask_of(xt)
        logits = self.net(xt, t, atom_mask)  # [B, 6 + 4A, V]
        allowed = allowed_tokens(atom_mask.shape[1], xt.device, self.ring)[None]  # [1, 6 + 4A, V]
        # padded slots stay unrestricted (finite): they are fixed in sampling and masked out of losses
        allowed = allowed | ~token_mask_of(atom_mask)[..., None]  # [B, 6 + 4A, V]
        return logits.masked_fill(~allowed, float("-inf"))


@dataclass
class CrystalModel:
    """A loaded crystal generator: the network (EMA weights), its flow settings and its record."""

    posterior: CrystalPosterior
    scheduler: str
    atom_count_distribution: np.ndarray  # [A_max + 1], index = atom count
    max_atoms: int
    record: dict[str, Any]
    path: Path | None = None
    coords: CoordinatePath = MASK_COORDINATES

    @property
    def dataset(self) -> str | None:
        return self.record.get("dataset", {}).get("name")


def resolve_model_path(model: str | os.PathLike) -> Path:
    """A checkpoint file, or the name of an embedded default (``perov_5``, ``carbon_24``)."""
    if str(model) in DEFAULT_MODELS:
        path = MODELS_DIR / DEFAULT_MODELS[str(model)]
        if not path.is_file():
            raise InputError(f"the embedded {model} model is not in this installation ({path}); "
                                    "train one with 'genmatch train crystals' and pass --model FILE")
        return path
    path = Path(model)
    if not path.is_file():
        raise InputError(f"model {str(model)!r} is neither a checkpoint file nor one of the embedded "
                                f"models ({', '.join(DEFAULT_MODELS)})")
    return path


def build_network(record: dict[str, Any]) -> CrystalDiT:
    """The DiT described by a checkpoint record's ``network`` entry (a config dict or a preset name)."""
    net = record.get("network")
    if isinstance(net, str):
        cfg = CONFIGS[net]
    elif isinstance(net, dict):
        cfg = CrystalDiTConfig(**net)
    else:
        raise InputError("checkpoint record has no 'network' config; is this a genmatch crystal model?")
    return CrystalDiT(cfg)


def load_crystal_model(model: str | os.PathLike, device: str | torch.device = "cpu") -> CrystalModel:
    """Load a crystal generator from a safetensors checkpoint (or an embedded default by name)."""
    path = resolve_model_path(model)
    ckpt = load_model_file(path, device=device)
    rec = ckpt.record
    if rec.get("kind") != "crystal_dit":
        raise InputError(f"{path}: not a genmatch crystal generator checkpoint (kind={rec.get('kind')!r}); "
                         "give a file written by 'genmatch train crystals'")
    try:
        net = build_network(rec)
        scheduler = rec["flow"]["scheduler"]
        coords = CoordinatePath.from_record(rec["flow"])
        coords.validate()
        ds = rec.get("dataset", {})
        dist = np.asarray(ds.get("atom_count_distribution", []), dtype=np.float64)
        max_atoms = int(ds.get("max_atoms", len(dist) - 1 if len(dist) else 20))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: the checkpoint record is incomplete or malformed ({type(exc).__name__}: "
                         f"{exc}); give a file written by 'genmatch train crystals'") from None
    if scheduler not in SCHEDULER_NAMES:
        raise InputError(f"{path}: unknown scheduler {scheduler!r} in the checkpoint record")
    load_state_dict_checked(net, ckpt.state_dict, str(path), expected=f"network {rec.get('network')!r}")
    net = net.to(device).eval()
    return CrystalModel(posterior=CrystalPosterior(net, coords.metric).eval(), scheduler=scheduler,
                        atom_count_distribution=dist, max_atoms=max_atoms, record=rec, path=path, coords=coords)

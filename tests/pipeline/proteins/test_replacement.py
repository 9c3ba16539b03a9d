"""Motif conditioning by replacement (pipeline.proteins.replacement): the final motif is exact, the chain stays
centred, and on the finite-data oracle of test_sampler.py replacement moves the free residues toward the exact
conditional law (it is an approximation: the measured TV is stated and the exact conditional oracle is run beside it);
centring done wrong, or the motif noised to the wrong time, is much worse. With the shipped model a motif cut from a
real chain comes out exact, and the CA-CA distances at its junctions are reported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.proteins import replacement
from pipeline.proteins.conditioning import Conditioning
from pipeline.proteins.replacement import MotifCondition, MotifPath
from pipeline.proteins.sampler import SamplerConfig, sample_proteins
from pipeline.proteins.score.folding import kabsch_rmsd
from structures.errors import InputError


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"protein_{name}_oracle", Path(__file__).with_name(f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


COND = _load("test_conditioning")  # its _run, _outcomes, _tv and the sampler oracle (COND.ORACLE)
ORACLE = COND.ORACLE
N, N_WRONG, STEPS = 2000, 500, 51  # samples; 500 for the variants that miss by far (sampling noise ~0.03 in TV)
MOTIF = torch.tensor([True, True, False])  # residues 0 and 1 of the 3-residue oracle chains


pytestmark = pytest.mark.usefixtures("float64_one_thread")  # tests/conftest.py


def _motif_data():
    """The oracle's 4 data points with point 1 sharing point 0's motif (residues 0, 1: the same relative geometry,
    rotations and amino acids) and a different residue 2, so that, each chain being centred, the motif sits at a
    different place inside chains 0 and 1. Given the motif the exact law is (1/3, 2/3, 0, 0)."""
    trans, rots, seq = (x.clone() for x in ORACLE._oracle_data())
    trans[1] = trans[0]
    trans[1, 2] = trans[0, 2] + 5.0 * torch.randn(3, generator=torch.Generator().manual_seed(9))
    trans = trans - trans.mean(1, keepdim=True)
    rots[1, :2] = rots[0, :2]
    return trans, rots, seq


def _motif_cond(data, n: int, method: str = "replacement") -> Conditioning:
    trans = data[0][0].clone()
    trans[MOTIF] -= trans[MOTIF].mean(0)  # centred on its own CA centroid, as place_motif gives it
    motif = MotifCondition(trans.expand(n, 3, 3).clone(), data[1][0].expand(n, 3, 3, 3).clone(),
                           MOTIF.expand(n, 3).clone(), method)
    return Conditioning(torch.ones(n, 3, dtype=torch.bool), motif=motif)


def _run(data, cond, seed=3, prior=None, trajectory=False):
    flow, paths = ORACLE._oracle_flow("flow", "kinetic_optimal")
    return COND._run(flow, paths, data, cond, SamplerConfig(steps=STEPS, flow=flow.config), seed, prior=prior,
                     trajectory=trajectory)


TARGET = torch.tensor([1 / 3, 2 / 3, 0.0, 0.0])


def test_replacement_moves_the_free_residues_toward_the_conditional_law(monkeypatch):
    """TV to the exact conditional law (1/3, 2/3, 0, 0), 2,000 samples (measured): unconditional 0.71; the exact
    conditional oracle (the data set restricted to the motif's points, sampled unconditionally) 0.018; replacement
    0.27 (it excludes points 2 and 3 but lands on point 0 too often: 0.55 instead of 1/3, 5 % on no point);
    hold 0.24 (on this data set no better or worse than replacement); with the free residue's rotation shared by
    points 0 and 1, replacement 0.07; the motif noised to time t^3 while the clock
    says t: 0.60; the motif placed at its own centroid (no offset from the prediction): 1.0."""
    data = _motif_data()
    exact = _run(data, Conditioning(torch.ones(N, 3, dtype=torch.bool)), prior=torch.tensor([1.0, 2.0, 0, 0]) / 3)
    assert COND._tv(exact.state, data, TARGET) < 0.04
    free = _run(data, Conditioning(torch.ones(N_WRONG, 3, dtype=torch.bool)))
    assert COND._tv(free.state, data, TARGET) > 0.6
    res = _run(data, _motif_cond(data, N))
    outcome = COND._outcomes(res.state, data, 4)
    assert not bool(((outcome == 2) | (outcome == 3)).any())  # the motif's evidence excludes the other points
    tv = COND._tv(res.state, data, TARGET)
    assert tv < 0.35  # measured 0.27: approximate, far nearer than the unconditional 0.71
    hold = _run(data, _motif_cond(data, N, "hold"))
    assert COND._tv(hold.state, data, TARGET) < 0.35  # measured 0.24
    trans, rots, seq = data
    rots = rots.clone()
    rots[1, 2] = rots[0, 2]  # the free residue's rotation shared too: the error was coming through it
    shared = (trans, rots, seq)
    assert COND._tv(_run(shared, _motif_cond(shared, N)).state, shared, TARGET) < 0.12  # measured 0.07

    fractions = MotifPath.fractions
    monkeypatch.setattr(MotifPath, "fractions", lambda self, t: fractions(self, t ** 3))
    late = _run(data, _motif_cond(data, N_WRONG))
    assert COND._tv(late.state, data, TARGET) > tv + 0.2  # measured 0.60
    monkeypatch.undo()
    monkeypatch.setattr(MotifPath, "match", lambda self, pred: None)  # the offset stays 0
    unplaced = _run(data, _motif_cond(data, N_WRONG))
    assert COND._tv(unplaced.state, data, TARGET) > 0.9  # measured 1.0


def test_the_chain_stays_centred_and_the_motif_sits_where_the_prediction_puts_it(monkeypatch):
    data, n = _motif_data(), 200
    res = _run(data, _motif_cond(data, n), trajectory=True)
    centroids = torch.stack([s.trans.mean(1).norm(dim=-1) for s in res.trajectory])  # [T + 1, B]
    assert float(centroids.max()) < 1e-9
    # where the motif landed: a translate of the motif, and the chain lands on a data point (its centroid 0)
    motif = _motif_cond(data, n).motif
    shift = (res.state.trans[:, :2] - motif.trans[:, :2]).mean(1, keepdim=True)
    assert float((res.state.trans[:, :2] - motif.trans[:, :2] - shift).abs().max()) < 1e-9
    # without re-centring the chain's centroid wanders (the check can fail)
    monkeypatch.setattr(replacement, "centred", lambda trans, mask: trans)
    drift = _run(data, _motif_cond(data, n), trajectory=True)
    assert float(torch.stack([s.trans.mean(1).norm(dim=-1) for s in drift.trajectory]).max()) > 0.1


def test_bad_motifs_are_refused():
    data, n = _motif_data(), 2
    cond = _motif_cond(data, n)
    cond.motif.method = "inpaint"
    with pytest.raises(InputError, match="unknown motif method"):
        _run(data, cond)
    cond = _motif_cond(data, n)
    cond.motif.mask = cond.motif.mask[:, :2]
    with pytest.raises(InputError, match="motif mask"):
        _run(data, cond)
    cond = _motif_cond(data, n)
    cond.res_mask = torch.tensor([[True, False, False]] * n)
    with pytest.raises(InputError, match="padding"):
        _run(data, cond)
    cond = _motif_cond(data, n)
    cond.fixed_structure, cond.trans, cond.rotmats = cond.motif.mask, cond.motif.trans, cond.motif.rotmats
    with pytest.raises(InputError, match="fixed_structure"):
        _run(data, cond)


# ------------------------------------------------------------------------------------------ the shipped model

def _real_motif(length: int = 40, start: int = 10, size: int = 10):
    """A 10-residue motif cut from the first chain of the backbone set that is long enough, placed at residues
    start .. start + size - 1 of a ``length``-residue scaffold: (motif CA [size, 3] centred, frames, mask)."""
    from structures.data import load_proteins
    from structures.proteins.frames import frames_from_atoms

    chains = load_proteins()
    chain = next(chains[i] for i in range(len(chains)) if len(chains[i]) >= 40)
    frames = frames_from_atoms(torch.from_numpy(np.asarray(chain.coords[20:20 + size], np.float64)))
    ca = frames.trans - frames.trans.mean(0)
    trans, rots = torch.zeros(1, length, 3), torch.eye(3).repeat(1, length, 1, 1)
    mask = torch.zeros(1, length, dtype=torch.bool)
    trans[0, start:start + size], rots[0, start:start + size], mask[0, start:start + size] = ca, frames.rots, True
    return ca, MotifCondition(trans.float(), rots.float(), mask), chain.name


@pytest.mark.parametrize("mode", ["codesign", "structure"])
def test_shipped_model_keeps_a_real_motif_exact(mode, capsys):
    from pipeline.proteins.network.checkpoint import load_protein_model

    torch.set_default_dtype(torch.float32)
    net = load_protein_model("protein_small", "cpu").net.eval()
    ca, motif, name = _real_motif()
    b = 2
    motif = MotifCondition(motif.trans.expand(b, -1, -1).clone(), motif.rotmats.expand(b, -1, -1, -1).clone(),
                           motif.mask.expand(b, -1).clone())
    cond = Conditioning(torch.ones(b, 40, dtype=torch.bool), motif=motif)
    res = sample_proteins(net, cond, SamplerConfig(steps=8, mode=mode), torch.Generator().manual_seed(0))
    out = res.state.trans.double()
    assert bool(torch.isfinite(out).all())
    assert float(out.mean(1).norm(dim=-1).max()) < 1e-4  # centred
    for i in range(b):
        got = out[i, 10:20].numpy()
        assert kabsch_rmsd(got, ca.numpy()) < 1e-4
        assert float(torch.linalg.det(res.state.rotmats[i, 10:20].double()).sub(1).abs().max()) < 1e-4
        got_r, want_r = res.state.rotmats[i, 10:20].double(), motif.rotmats[i, 10:20].double()
        # the motif's frames up to the one rigid rotation fitted to the prediction: relative rotations are kept
        rel = (got_r[:1].transpose(-1, -2) @ got_r) - (want_r[:1].transpose(-1, -2) @ want_r)
        assert float(rel.abs().max()) < 1e-4
    junctions = [(out[:, 10] - out[:, 9]).norm(dim=-1), (out[:, 20] - out[:, 19]).norm(dim=-1)]
    assert all(bool(torch.isfinite(j).all()) for j in junctions)
    with capsys.disabled():
        print(f"\n[{mode}] motif {name} 20-29 at 10-19 of 40, 8 steps: junction CA-CA (A) "
              f"{[round(float(x), 2) for j in junctions for x in j]} (goal 3.8 +- 0.25; not asserted)")

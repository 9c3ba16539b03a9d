"""Relax columns in the campaign table and the export's plots (issue 26).

A small crystal campaign (design_specs.CAMPAIGN: 4 crystals, 10 CHGNet FIRE steps; ~25 s) whose filter and Pareto
rank use relax columns: the joined columns equal relax_results.csv row by row, the filter keeps exactly the rows
it names, the export writes funnel, histogram and Pareto PNGs listed in report.json, byte-identical when export
reruns on the same table, and none with ``plots = false``. The join itself on the real tables with the score rows
reversed, a failed relaxation and a missing relax row (NaN / None, and how filters read them). A protein campaign
with an all-atom relax stage filtered on relax columns (OpenMM, 2 chains of 24 residues; ~25 s).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from workflows.design import load_spec, run
from workflows.design.execute import CampaignResult
from workflows.design.expressions import parse_expression
from workflows.design.select import filter_rows, join_relax
from workflows.design.settings import RELAX_COLUMNS

sys.path.insert(0, str(Path(__file__).parent))  # the shared specs, imported by their plain name
from design_specs import CAMPAIGN  # noqa: E402
from test_campaign import PROTEIN_SPEC  # noqa: E402

PARETO = CAMPAIGN.replace('method = "weighted"\ncolumns = ["e_hull", "density"]\nweights = [1.0, 0.5]',
                          'method = "pareto"\ncolumns = ["relax_energy_per_atom", "density"]')
PNG = b"\x89PNG\r\n\x1a\n"


def _stage(campaign: Path, kind: str, result: CampaignResult | None = None) -> Path:
    """The stage folder of ``kind``: of ``result``'s plan when given (a rerun leaves the old folders), else the
    only one."""
    if result is not None:
        return next(p.folder for p in result.plans if p.stage.kind == kind)
    (folder,) = campaign.glob(f"*-{kind}-*")
    return folder


def _expected_crystal_columns(relax: pd.DataFrame) -> pd.DataFrame:
    """The relax columns computed here from relax_results.csv, by id (failed: NaN numbers, converged false)."""
    ok = relax["status"] != "failed"
    return pd.DataFrame({
        "relax_converged": relax["status"] == "converged",
        "relax_energy_per_atom": relax["e_final_per_atom"].where(ok),
        "relax_energy_drop_per_atom": (relax["e_initial_per_atom"] - relax["e_final_per_atom"]).where(ok),
        "relax_steps": relax["n_steps"].astype(float).where(ok), "relax_fmax": relax["fmax_final"].where(ok)},
    ).set_axis(relax["id"].astype(str))


def _plot_bytes(export: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((export / "plots").glob("*.png"))}


def test_a_crystal_campaign_filters_and_ranks_on_relax_columns_and_plots(tmp_path: Path) -> None:
    spec_file, out = tmp_path / "campaign.toml", tmp_path / "campaign"
    text = PARETO.replace("CACHE", str(tmp_path / "cache"))
    spec_file.write_text(text.replace("usable and not (e_hull > 100)", "usable and relax_steps >= 0"))
    result = run(load_spec(spec_file), out, threads=1, progress=False)
    relax = pd.read_csv(_stage(out, "relax") / "relax_results.csv")
    expected = _expected_crystal_columns(relax)
    table = pd.read_parquet(_stage(out, "filter", result) / "table.parquet")  # every scored row kept
    assert list(table.columns[-5:]) == list(RELAX_COLUMNS["crystals"])
    pd.testing.assert_frame_equal(table[list(expected.columns)], expected.loc[table["id"]].reset_index(drop=True),
                                  check_dtype=False, check_names=False)
    # a threshold between the energies (the median) so the filter keeps some rows and drops some; only the
    # stages from filter on rerun
    energies = np.sort(table["relax_energy_per_atom"].to_numpy())
    cut = float(np.round((energies[len(energies) // 2 - 1] + energies[len(energies) // 2]) / 2, 6))
    spec_file.write_text(text.replace("usable and not (e_hull > 100)", f"usable and relax_energy_per_atom < {cut}"))
    result = run(load_spec(spec_file), out, threads=1, progress=False)
    assert result.ran == [3, 4, 5, 6]
    kept = pd.read_parquet(_stage(out, "filter", result) / "table.parquet")
    assert sorted(kept["id"]) == sorted(table.loc[table["usable"] & (table["relax_energy_per_atom"] < cut), "id"])
    assert 0 < len(kept) < len(table)
    ranked = pd.read_parquet(_stage(out, "rank", result) / "table.parquet")
    assert ranked["pareto_front"].is_monotonic_increasing and set(ranked["id"]) == set(kept["id"])

    export = result.export_dir
    report = json.loads((export / "report.json").read_text())
    assert report["plots"] == ["plots/funnel.png", "plots/hist_relax_energy_per_atom.png", "plots/hist_density.png",
                               "plots/pareto.png"]
    first = _plot_bytes(export)
    assert sorted(first) == sorted(Path(p).name for p in report["plots"])
    for name, data in first.items():
        assert data.startswith(PNG), name
        with Image.open(export / "plots" / name) as im:
            assert im.size[0] >= 400 and "Software" not in im.info, (name, im.info)  # no matplotlib version
    (export / "stage.json").unlink()  # export reruns on the same table: the same bytes
    for p in (export / "plots").iterdir():
        p.unlink()
    assert run(load_spec(spec_file), out, threads=1, progress=False).ran == [6]
    assert _plot_bytes(export) == first
    spec_file.write_text(spec_file.read_text().replace("top_k = 2", "top_k = 2\nplots = false"))
    bare = run(load_spec(spec_file), out, threads=1, progress=False)
    assert bare.ran == [6] and bare.export_dir != export and not (bare.export_dir / "plots").exists()
    assert json.loads((bare.export_dir / "report.json").read_text())["plots"] == []

    # the join on the real tables: score rows reversed, one relaxation failed, one relax row missing
    scores = pd.read_parquet(_stage(out, "score") / "scores.parquet").iloc[::-1].reset_index(drop=True)
    relax2 = relax.copy()
    failed, gone = scores["id"].iloc[0], scores["id"].iloc[1]
    relax2.loc[relax2["id"] == failed, "status"] = "failed"
    relax2 = relax2[relax2["id"] != gone]
    joined = join_relax(scores, relax2, "crystals")
    assert joined["id"].tolist() == scores["id"].tolist()  # the score table's order
    rest = joined["id"].isin([failed, gone]).to_numpy()
    pd.testing.assert_frame_equal(joined.loc[~rest, list(expected.columns)].reset_index(drop=True),
                                  expected.loc[joined.loc[~rest, "id"]].reset_index(drop=True), check_dtype=False,
                                  check_names=False)
    assert joined.loc[:1, ["relax_energy_per_atom", "relax_steps", "relax_fmax"]].isna().all().all()
    assert joined["relax_converged"].tolist()[:2] == [False, None]
    ids = lambda e: filter_rows(joined, parse_expression(e))["id"].tolist()  # noqa: E731
    assert failed not in ids("relax_energy_per_atom < 0") and failed in ids("not (relax_energy_per_atom < 0)")
    assert gone not in ids("relax_converged or relax_steps >= 0") and gone in ids("not relax_converged")


PROTEIN_RELAX = PROTEIN_SPEC.replace("per_length = 3", "per_length = 2").replace(
    '[[stage]]\nkind = "score"', '[[stage]]\nkind = "relax"\n\n[[stage]]\nkind = "score"', 1).replace(
    "expr = \"status == 'scored'\"",
    "expr = \"status == 'scored' and relax_clashes_after == 0 and relax_backbone_rmsd < 1.0\"").replace(
    '[[stage]]\nkind = "deduplicate"\ntm_threshold = 0.9\n\n', "").replace(
    'method = "pareto"\ncolumns = ["mpnn_log_likelihood", "novelty"]\nascending = [false, false]',
    'method = "weighted"\ncolumns = ["relax_backbone_rmsd", "mpnn_log_likelihood"]\nascending = [true, false]')


def test_a_protein_campaign_filters_on_relax_columns(tmp_path: Path) -> None:
    spec_file = tmp_path / "proteins.toml"
    spec_file.write_text(PROTEIN_RELAX.replace("CACHE", str(tmp_path / "cache")))
    with pytest.warns(UserWarning, match="outside the 60-128 residues"):
        result = run(load_spec(spec_file), tmp_path / "campaign", threads=1, progress=False)
    out = tmp_path / "campaign"
    relax = pd.read_csv(_stage(out, "relax") / "relax_results.csv")
    relax.index = [Path(p).stem for p in relax["pdb_path"]]
    scores = pd.read_parquet(_stage(out, "score") / "scores.parquet")
    kept = pd.read_parquet(_stage(out, "filter") / "table.parquet")
    r = relax.loc[scores["id"]]
    mask = (scores["status"] == "scored").to_numpy() & (r["clashes_after"] == 0).to_numpy() & (
        r["backbone_rmsd"] < 1.0).to_numpy()
    assert kept["id"].tolist() == scores.loc[mask, "id"].tolist()
    r = relax.loc[kept["id"]]
    assert np.allclose(kept["relax_backbone_rmsd"], r["backbone_rmsd"])
    assert np.allclose(kept["relax_energy_per_residue"], r["energy_after_per_residue"])
    assert kept["relax_converged"].tolist() == (r["status"] == "relaxed").tolist()
    assert (kept["relax_clashes_after"] == 0).all() and list(kept.columns[-9:]) == list(RELAX_COLUMNS["proteins"])
    report = json.loads((result.export_dir / "report.json").read_text())
    assert report["plots"][0] == "plots/funnel.png" and len(report["top"]) == min(2, len(kept))
    for p in report["plots"]:
        assert (result.export_dir / p).read_bytes().startswith(PNG)
    print(f"proteins: {len(kept)} of {len(scores)} kept; plots {report['plots']}")

"""The design-campaign specs of ``examples/`` (issue 26 item 4). Fast: every spec parses and validates
(:func:`workflows.design.load_spec`), is listed in examples/README.md with its command, and the motif PDB is what
``examples/data/make_motif.py`` writes from the embedded backbone set. Slow: each spec runs end to end through
``genmatch design`` at a small size (its counts and steps cut down by editing the TOML text), and its export holds
``top.csv`` with rows and a structure file per row."""

from __future__ import annotations

import importlib.util
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from workflows.cli import main
from workflows.design import load_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SPECS = sorted(EXAMPLES.glob("*.toml"))
NAMES = ["csp_formulas", "perovskite_guided", "protein_motif", "protein_codesign_relax"]


def test_the_four_examples_are_there() -> None:
    assert sorted(p.stem for p in SPECS) == sorted(NAMES)


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_every_example_spec_validates(spec: Path) -> None:
    """Parsed and checked as ``genmatch design`` checks it before running (keys, values, stage order, filter and
    rank columns, relative paths from the spec's folder), and documented with its command."""
    campaign = load_spec(spec)
    kinds = [s.kind for s in campaign.stages]
    assert kinds[0] == "generate" and kinds[-1] == "export"
    command = f"genmatch design examples/{spec.name}"
    assert command in (EXAMPLES / "README.md").read_text() and command in spec.read_text()


def test_the_motif_pdb_is_the_embedded_chain(tmp_path: Path) -> None:
    """``examples/data/1ctf_A.pdb`` is byte for byte what its script writes from the embedded backbone set, and the
    motif spec reads it from the spec's folder."""
    loader = importlib.util.spec_from_file_location("make_motif", EXAMPLES / "data" / "make_motif.py")
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    written = module.main(tmp_path / "motif.pdb")
    assert written.read_bytes() == (EXAMPLES / "data" / "1ctf_A.pdb").read_bytes()
    conditions = load_spec(EXAMPLES / "protein_motif.toml").stages[0].config.conditions
    assert Path(conditions.motif) == EXAMPLES / "data" / "1ctf_A.pdb"


#: score settings of a test size: a few reference structures, no plots, a cache folder in the test's own folder
CRYSTAL_SCORE = ('hull_reference = "perov_5:val"\nreference_limit = 10\nn_samples = 4\nplots = false\n'
                 'cache_dir = "CACHE"')
PROTEIN_SCORE = ('diversity = true\nreference_limit = 5\nplots = false\ncache_dir = "CACHE"\n'
                 "[stage.mpnn]\nn_sequences = 1")
#: (old, new) text edits that cut each example down to a test size; each old text must occur once in the spec
SMALL: dict[str, list[tuple[str, str]]] = {
    "csp_formulas": [("n = 50", "n = 2"), ("steps = 250", "steps = 10"), ("max_steps = 500", "max_steps = 10"),
                     ('hull_reference = "perov_5:val"', CRYSTAL_SCORE)],
    "perovskite_guided": [("n = 200", "n = 4"), ("steps = 250", "steps = 10"), ("max_steps = 500", "max_steps = 10"),
                          ('hull_reference = "perov_5:val"', CRYSTAL_SCORE),
                          ("e_hull <= 0.1", "e_hull <= 100")],  # 10 sampler and FIRE steps: not near the hull
    "protein_motif": [("per_length = 32", "per_length = 2"), ("steps = 50", "steps = 3"),
                      ("diversity = true", PROTEIN_SCORE),
                      ("n_chain_breaks == 0", "n_chain_breaks >= 0")],  # 3 sampler steps: breaks everywhere
    "protein_codesign_relax": [("lengths = [60, 80, 100]", "lengths = [60]"), ("per_length = 20", "per_length = 2"),
                               ("steps = 50", "steps = 3"),
                               ('kind = "relax"', 'kind = "relax"\nmax_iterations = 200\nmax_outer_iterations = 1'),
                               ("diversity = true", PROTEIN_SCORE)],
}


def small_spec(name: str, folder: Path) -> Path:
    """The example ``name`` cut down by :data:`SMALL`, written into ``folder`` beside a copy of ``examples/data``
    (so its relative paths resolve as from ``examples/``)."""
    text = (EXAMPLES / f"{name}.toml").read_text()
    for old, new in SMALL[name]:
        assert text.count(old) == 1, f"{name}.toml: expected {old!r} once; update SMALL with the spec"
        text = text.replace(old, new)
    shutil.copytree(EXAMPLES / "data", folder / "data")
    spec = folder / f"{name}.toml"
    spec.write_text(text.replace("CACHE", str(folder / "cache")))
    return spec


@pytest.mark.slow  # 3-40 s each on a shared core (CHGNet and its hull; OpenMM for the relaxed proteins)
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", NAMES)
def test_an_example_runs_end_to_end(name: str, tmp_path: Path) -> None:
    spec = small_spec(name, tmp_path)
    out = tmp_path / "campaign"
    t0 = time.perf_counter()
    assert main(["design", str(spec), "--out", str(out), "--quiet", "--threads", "1"]) == 0
    export = next(out.glob("*-export-*"))
    top = pd.read_csv(export / "top.csv")
    assert len(top) >= 1 and (export / "report.json").is_file()
    fmt = "pdb" if name.startswith("protein") else "cif"
    for f in top[f"file_{fmt}"]:
        assert (export / f).is_file() and (export / f).stat().st_size > 0
    if name == "protein_codesign_relax":  # the exported models are the all-atom relaxed ones
        atoms = {ln[12:16].strip() for ln in (export / top["file_pdb"].iloc[0]).read_text().splitlines()
                 if ln.startswith("ATOM")}
        assert {"N", "CA", "C", "O", "CB"} <= atoms
    print(f"{name}: {time.perf_counter() - t0:.1f} s, {len(top)} exported")

"""Campaign plans (workflows.design.plan): keys chain, so changing one stage's setting reruns it and every later
stage and reuses the earlier ones (and a plan whose keys do not chain fails that check); an interrupted stage reruns
with those after it; input files count by content; a folder of another campaign is refused; ``--dry-run`` prints
the plan and writes nothing; a bad spec exits 2 with the key and line."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

from structures.errors import InputError
from workflows.cli import main
from workflows.design.plan import CAMPAIGN_FILE, STAGE_FILE, check_campaign_folder, format_plan, plan
from workflows.design.spec import parse_spec

sys.path.insert(0, str(Path(__file__).parent))  # the shared specs, imported by their plain name
from design_specs import BASE  # noqa: E402


def _finish(plans: list) -> None:
    """Mark every planned stage finished, as the runner does last."""
    if plans:
        (plans[0].folder.parent / CAMPAIGN_FILE).write_text(json.dumps({"name": "perov", "material": "crystals"}))
    for p in plans:
        p.folder.mkdir(parents=True, exist_ok=True)
        (p.folder / STAGE_FILE).write_text(json.dumps({"key": p.key}))


def _statuses(text: str, d: Path) -> list[str]:
    return [p.status for p in plan(parse_spec(text, "c.toml"), d)]


def _rekeyed(d: Path) -> bool:
    """Changing relax's max_steps: generate is reused in its folder; relax and every later stage run, each in a
    new folder (a stage's folder is keyed by its inputs too, so no later stage overwrites its earlier run)."""
    first = plan(parse_spec(BASE, "c.toml"), d)
    _finish(first)
    changed = plan(parse_spec(BASE.replace("max_steps = 5", "max_steps = 6"), "c.toml"), d)
    return ([p.status for p in changed] == ["reuse"] + ["run"] * 5 and changed[0].folder == first[0].folder
            and all(a.folder != b.folder for a, b in zip(changed[1:], first[1:])))


def test_a_changed_setting_reruns_that_stage_and_later_ones(tmp_path: Path) -> None:
    first = plan(parse_spec(BASE, "c.toml"), tmp_path)
    assert [p.status for p in first] == ["run"] * 6
    assert len({p.key for p in first}) == 6 and all(p.folder.parent == tmp_path for p in first)
    _finish(first)
    assert _statuses(BASE, tmp_path) == ["reuse"] * 6
    assert _rekeyed(tmp_path)
    text = BASE.replace("density > 1", "density > 2")
    assert _statuses(text, tmp_path) == ["reuse"] * 3 + ["run"] * 3
    assert _statuses(BASE.replace("top_k = 2", "top_k = 3"), tmp_path) == ["reuse"] * 5 + ["run"]
    assert _statuses(BASE, tmp_path) == ["reuse"] * 6  # changed back: the old folders are reused


def test_keys_that_do_not_chain_are_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The mutant hashes each stage alone: after a changed relax, score would rerun in its old folder."""
    plan_module = importlib.import_module("workflows.design.plan")  # the module (the package exports plan())
    real = plan_module.stage_key
    monkeypatch.setattr(plan_module, "stage_key", lambda material, stage, previous: real(material, stage, ""))
    assert not _rekeyed(tmp_path)


def test_an_unfinished_stage_reruns_with_the_later_ones(tmp_path: Path) -> None:
    plans = plan(parse_spec(BASE, "c.toml"), tmp_path)
    _finish(plans)
    (plans[2].folder / STAGE_FILE).unlink()  # score was interrupted
    assert _statuses(BASE, tmp_path) == ["reuse", "reuse", "run", "run", "run", "run"]
    (plans[4].folder / STAGE_FILE).write_text(json.dumps({"key": "something else"}))
    assert _statuses(BASE, tmp_path)[4] == "run"


def test_input_files_count_by_content(tmp_path: Path) -> None:
    model = tmp_path / "spec" / "model.safetensors"
    model.parent.mkdir()
    model.write_bytes(b"weights A")
    text = BASE.replace("n = 4", 'n = 4\nmodel = "model.safetensors"')
    key = lambda: plan(parse_spec(text, "c.toml", model.parent), tmp_path / "c")[0].key  # noqa: E731
    a = key()
    assert parse_spec(text, "c.toml", model.parent).stages[0].settings["model"] == str(model)  # relative to spec
    model.write_bytes(b"weights B")
    b = key()
    model.write_bytes(b"weights A")
    assert a != b and key() == a
    model.rename(model.parent / "renamed.safetensors")  # the name is not the content
    text = text.replace("model.safetensors", "renamed.safetensors")
    assert key() == a


def test_a_folder_of_another_campaign_is_refused(tmp_path: Path) -> None:
    spec = parse_spec(BASE, "c.toml")
    check_campaign_folder(spec, tmp_path / "new")  # missing: fine
    (tmp_path / CAMPAIGN_FILE).write_text(json.dumps({"name": "other", "material": "crystals"}))
    with pytest.raises(InputError, match=r"holds campaign 'other' \(crystals\), not 'perov' \(crystals\)"):
        plan(spec, tmp_path)
    (tmp_path / CAMPAIGN_FILE).write_text(json.dumps({"name": "perov", "material": "proteins"}))
    with pytest.raises(InputError, match="holds campaign 'perov' \\(proteins\\)"):
        plan(spec, tmp_path)
    (tmp_path / CAMPAIGN_FILE).unlink()
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a campaign folder"):
        plan(spec, tmp_path)
    with pytest.raises(InputError, match="is a file"):
        plan(spec, tmp_path / "notes.txt")


def test_format_plan(tmp_path: Path) -> None:
    spec = parse_spec(BASE, "c.toml")
    plans = plan(spec, tmp_path)
    _finish(plans[:2])
    text = format_plan(spec, plan(spec, tmp_path))
    lines = text.splitlines()
    assert lines[0] == "campaign 'perov' (crystals), 6 stages: 2 to reuse, 4 to run"
    assert " generate    reuse " in lines[1] and " export      run " in lines[6] and "top_k=2" in lines[6]


def test_cli_dry_run_writes_nothing_and_bad_specs_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "c.toml"
    spec.write_text(BASE)
    out = tmp_path / "campaign"
    assert main(["design", str(spec), "--out", str(out), "--dry-run"]) == 0
    assert "6 stages: 0 to reuse, 6 to run" in capsys.readouterr().out and not out.exists()
    spec.write_text(BASE.replace('expr = "valid and density > 1"', 'expr = "valid and density >"'))
    assert main(["design", str(spec), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"genmatch: error: {spec}:24: stage[3].expr: filter: unexpected end") and not out.exists()
    (out / "x").mkdir(parents=True)
    spec.write_text(BASE)
    assert main(["design", str(spec), "--out", str(out), "--dry-run"]) == 2
    assert "not a campaign folder" in capsys.readouterr().err


def test_design_help_imports_no_heavy_library() -> None:
    """``genmatch design --help`` (the command table with the design row) imports neither torch, numpy nor pandas."""
    import subprocess

    code = ("import sys\nfrom workflows.cli import main\ncode = main(['design', '--help'])\n"
            "print(code, sorted(m for m in ('torch', 'numpy', 'pymatgen', 'pandas', 'scipy') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=Path(__file__).resolve().parents[3])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "0 []"

"""The plan of a campaign: each stage's key, run folder and whether it is reused or run.

A stage's key is a chain of hashes: key_i = H(material, kind_i, settings_i, contents of the files its settings
name (not their names), key_{i-1}) (:func:`pipeline.common.run.fingerprint`, SHA-256), so it changes when its
settings, its input files or any earlier stage change, and only then. Its folder is
``CAMPAIGN/<i>-<kind>-<key[:12]>``: a changed setting makes a new folder (the old one stays, and is reused if the
setting is changed back). A stage is reused
when its folder holds ``stage.json`` with its key (written when it finished) and no earlier stage runs; otherwise
it runs, and so does every later stage.

``CAMPAIGN/campaign.json`` names the campaign and its material; a folder that holds another campaign, or files
that are not a campaign's, is refused before anything is written (:func:`check_campaign_folder`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from structures.errors import InputError
from workflows.design.spec import PATH_KEYS, CampaignSpec, Stage

__all__ = ["CAMPAIGN_FILE", "STAGE_FILE", "StagePlan", "check_campaign_folder", "format_plan", "plan", "stage_key"]

CAMPAIGN_FILE = "campaign.json"
STAGE_FILE = "stage.json"
KEY_FORMAT = 1  # bump when the meaning of a stage's outputs changes


@dataclass(frozen=True)
class StagePlan:
    """One stage of a plan: its ``key``, its run ``folder`` and ``status`` "reuse" or "run"."""

    stage: Stage
    key: str
    folder: Path
    status: str


def _files(value: Any, out: list[Any], is_input: bool = False) -> None:
    """The input files (contents, by :class:`os.PathLike`) that ``value`` names, in key order: the string values
    of the keys in :data:`~workflows.design.spec.PATH_KEYS` (resolved to absolute paths by the spec) that are
    files or folders (a folder adds its files' relative names and contents). Other paths, such as a cache folder,
    are settings, not inputs."""
    if isinstance(value, dict):
        for k in sorted(value):
            _files(value[k], out, k in PATH_KEYS)
    elif isinstance(value, list):
        for v in value:
            _files(v, out, is_input)
    elif is_input and isinstance(value, str) and value and os.path.isabs(value):
        p = Path(value)
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            out.append([[str(f.relative_to(p)), f] for f in sorted(p.rglob("*")) if f.is_file()])


def _without_input_names(value: Any, is_input: bool = False) -> Any:
    """``value`` with the paths of existing input files and folders replaced by a placeholder: their contents
    are hashed, their names are not (renaming an input changes no key, as in docs/runs.md)."""
    if isinstance(value, dict):
        return {k: _without_input_names(v, k in PATH_KEYS) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_input_names(v, is_input) for v in value]
    if is_input and isinstance(value, str) and os.path.isabs(value) and os.path.exists(value):
        return "<input>"
    return value


def stage_key(material: str, stage: Stage, previous: str) -> str:
    """key_i = H(material, kind, settings, their files' contents, key_{i-1}) (module docstring), 32 hex."""
    from pipeline.common.run import fingerprint

    files: list[Any] = []
    _files(stage.settings, files)
    settings = json.dumps(_without_input_names(stage.settings), sort_keys=True, default=str)
    return fingerprint(["genmatch-design-stage", KEY_FORMAT, material, stage.kind, settings, files, previous])


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) else None


def check_campaign_folder(spec: CampaignSpec, folder: str | os.PathLike) -> None:
    """Refuse (InputError) a ``folder`` that holds another campaign (another name or material in its
    campaign.json) or, without campaign.json, any file; a missing or empty folder is fine."""
    d = Path(folder)
    if d.exists() and not d.is_dir():
        raise InputError(f"campaign folder {d}: is a file, not a campaign folder; give a folder")
    if not d.exists() or not any(d.iterdir()):
        return
    rec = _read_json(d / CAMPAIGN_FILE)
    if rec is None:
        raise InputError(f"campaign folder {d}: holds files but no {CAMPAIGN_FILE}, so it is not a campaign "
                         "folder; give a new or empty folder")
    if rec.get("name") != spec.name or rec.get("material") != spec.material:
        raise InputError(f"campaign folder {d}: holds campaign {rec.get('name')!r} ({rec.get('material')}), not "
                         f"{spec.name!r} ({spec.material}); give another folder, or remove that one")


def plan(spec: CampaignSpec, campaign_dir: str | os.PathLike) -> list[StagePlan]:
    """Each stage's key, folder and status (module docstring); reads the folder, writes nothing."""
    d = Path(campaign_dir)
    check_campaign_folder(spec, d)
    out, previous, running = [], "", False
    for stage in spec.stages:
        key = stage_key(spec.material, stage, previous)
        folder = d / f"{stage.index:02d}-{stage.kind}-{key[:12]}"
        done = (_read_json(folder / STAGE_FILE) or {}).get("key") == key
        running = running or not done
        out.append(StagePlan(stage, key, folder, "run" if running else "reuse"))
        previous = key
    return out


def _brief(settings: dict[str, Any], width: int = 60) -> str:
    text = " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in settings.items())
    return text if len(text) <= width else text[:width - 3] + "..."


def format_plan(spec: CampaignSpec, plans: list[StagePlan]) -> str:
    """The plan as text (``genmatch design --dry-run``): one line per stage, its status, folder and settings."""
    n_run = sum(p.status == "run" for p in plans)
    head = (f"campaign {spec.name!r} ({spec.material}), {len(plans)} stages: {len(plans) - n_run} to reuse, "
            f"{n_run} to run")
    rows = [f"  [{p.stage.index}] {p.stage.kind:<11s} {p.status:<5s}  {p.folder.name}  {_brief(p.stage.settings)}"
            for p in plans]
    return "\n".join([head, *rows])

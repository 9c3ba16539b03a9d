"""``genmatch info``: versions, data directory and data sets, devices, available models/weights."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from structures.data import DATA_ENV, DataNotFoundError, available_datasets, data_root, dataset_size

PACKAGES = ("torch", "numpy", "scipy", "pandas", "pymatgen", "biotite", "chgnet", "ase", "smact", "matminer",
            "lightning", "safetensors")

MULTIFLOW_CKPT_ENV = "GENMATCH_MULTIFLOW_CKPT"


def _version(pkg: str) -> str:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return "not installed"


def _devices() -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {"cpu_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        out["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return out


def _models() -> dict[str, str]:
    models: dict[str, str] = {}
    try:
        import chgnet

        weights = sorted(p.name for p in (Path(chgnet.__file__).parent / "pretrained").rglob("*.pth.tar"))
        models["chgnet"] = f"available ({', '.join(weights)})" if weights else "no weights in the wheel"
    except ImportError:
        models["chgnet"] = "not installed"
    from pipeline.crystals.flow import MODELS_DIR, DEFAULT_MODELS

    for name, fname in DEFAULT_MODELS.items():
        path = MODELS_DIR / fname
        models[f"crystals/{name}"] = (f"shipped ({path.name}, {path.stat().st_size / 1e6:.1f} MB)"
                                      if path.is_file() else f"MISSING ({path})")
    ckpt = os.environ.get(MULTIFLOW_CKPT_ENV)
    if ckpt:
        models["multiflow"] = f"{ckpt} ({'found' if Path(ckpt).is_file() else 'MISSING'})"
    else:
        models["multiflow"] = f"not configured (set {MULTIFLOW_CKPT_ENV} to a released last.ckpt)"
    return models


def collect_info(count_entries: bool = True) -> dict[str, Any]:
    """Everything ``genmatch info`` reports, as a JSON-serialisable dict."""
    from workflows import __version__

    info: dict[str, Any] = {
        "genmatch": __version__,
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in PACKAGES},
        "devices": _devices(),
        "models": _models(),
    }
    try:
        root = data_root(required=False)
        info["data_root"] = str(root) if root else None
    except DataNotFoundError as exc:
        info["data_root"] = None
        info["data_error"] = str(exc)
        root = None
    info["data_root_source"] = DATA_ENV if os.environ.get(DATA_ENV) else "embedded (structures/embedded)"
    datasets: dict[str, Any] = {}
    if root is not None:
        for name, splits in available_datasets().items():
            for split in splits:
                key = f"{name}/{split}" if split else name
                datasets[key] = dataset_size(name, split or None) if count_entries else "present"
    info["datasets"] = datasets
    return info


def format_info(info: dict[str, Any]) -> str:
    lines = [f"genmatch {info['genmatch']} (python {info['python']})", "", "packages:"]
    lines += [f"  {k:16s} {v}" for k, v in info["packages"].items()]
    dev = info["devices"]
    cuda = ", ".join(dev.get("cuda_devices", [])) or "none"
    lines += ["", f"devices: cpu ({dev['cpu_threads']} threads), cuda: {cuda}", "", "models:"]
    lines += [f"  {k:20s} {v}" for k, v in info["models"].items()]
    lines += ["", f"data root: {info['data_root'] or 'NOT FOUND'} [{info['data_root_source']}]"]
    if "data_error" in info:
        lines.append(f"  {info['data_error']}")
    if info["datasets"]:
        lines += [f"  {k:16s} {v} entries" if isinstance(v, int) else f"  {k:16s} {v}"
                  for k, v in info["datasets"].items()]
    else:
        lines.append(f"  no data sets found (set {DATA_ENV})")
    return "\n".join(lines)

"""The one place tests find their files: the repository root and the fixtures under ``tests/fixtures/``.

    from helpers import fixture_path
    fixture_path("multiflow", "so3_utils_reference.safetensors")

A missing fixture is an error, never a skip: the fixtures are part of the repository.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures"


def fixture_path(*parts: str) -> Path:
    """``tests/fixtures/<parts...>``; raises FileNotFoundError when it is not there."""
    path = FIXTURES.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"test fixture missing: {path} (it is committed with the repository)")
    return path


#: a crystal DiT small enough to train for a few steps in seconds (the tiny models of the crystal tests)
TINY_NET = {"hidden": 32, "blocks": 1, "heads": 2, "dropout": 0.0, "time_freq_dim": 16}


def tiny_config(**kw):
    """A :class:`~pipeline.crystals.train.CrystalTrainConfig` for 64 Perov-5 val crystals and ``TINY_NET``."""
    from pipeline.crystals.train import CrystalTrainConfig

    base = dict(dataset="perov_5", split="val", network=dict(TINY_NET), batch_size=16, max_steps=20, val_every=10,
                warmup_steps=5, lr=3e-3, limit=64, val_fraction=0.25, val_times=2, seed=0)
    base.update(kw)
    return CrystalTrainConfig(**base)


def plain_protein_model(path: Path) -> Path:
    """The shipped protein_small without a motif input, saved at ``path``: an unconditional model (as a MultiFlow
    checkpoint is), the model that the amortised motif method must refuse."""
    from dataclasses import replace

    from pipeline.proteins.network import ProteinNetwork
    from pipeline.proteins.network.checkpoint import load_protein_model, save_protein_checkpoint

    shipped = load_protein_model("protein_small")
    net = ProteinNetwork(replace(shipped.net.cfg, motif_input=False), init=False)
    net.load_state_dict({k: v for k, v in shipped.net.state_dict().items() if not k.startswith("motif_")})
    return save_protein_checkpoint(path, net, shipped.info)

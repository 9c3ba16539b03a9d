"""Protein test fixtures: MultiFlow's numerical reference (``tests/fixtures/multiflow``, made with MultiFlow's
unmodified code; see its README)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from pipeline.proteins.network import ProteinNetworkConfig, ProteinNetworkInput
from helpers import fixture_path


def multiflow_reference_dir() -> Path:
    return fixture_path("multiflow")


@dataclass
class MultiFlowFixture:
    folder: Path
    config_doc: dict  # the YAML document ({"model": {...}})
    config: ProteinNetworkConfig
    state_dict: dict[str, torch.Tensor]  # float64, no "model." prefix
    io: dict[str, torch.Tensor]

    def input(self) -> ProteinNetworkInput:
        io = self.io
        return ProteinNetworkInput(
            trans=io["in.trans_t"], rotmats=io["in.rotmats_t"], aatypes=io["in.aatypes_t"], res_mask=io["in.res_mask"],
            so3_t=io["in.so3_t"], r3_t=io["in.r3_t"], cat_t=io["in.cat_t"], trans_sc=io["in.trans_sc"],
            aatypes_sc=io["in.aatypes_sc"], diffuse_mask=io["in.diffuse_mask"], res_idx=io["in.res_idx"])


@pytest.fixture(scope="session")
def multiflow_fixture() -> MultiFlowFixture:
    folder = multiflow_reference_dir()
    doc = yaml.safe_load((folder / "multiflow_small_config.yaml").read_text())
    return MultiFlowFixture(folder, doc, ProteinNetworkConfig.from_multiflow(doc["model"]),
                            load_file(str(folder / "multiflow_small_state_dict.safetensors")),
                            load_file(str(folder / "multiflow_small_io.safetensors")))

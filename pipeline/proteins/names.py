"""Names that protein configs and the command line choose from; importable without torch."""

from __future__ import annotations

from typing import Literal, get_args

#: what the sampler generates: co-design, structure only, forward folding (sequence given), inverse folding
Mode = Literal["codesign", "structure", "folding", "inverse_folding"]
MODES: tuple[str, ...] = get_args(Mode)

#: network precisions: float32, or bfloat16 autocast (about 2x faster on CPUs with AVX512-BF16 and on GPUs)
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")

#: the mode spellings the command line offers (Python accepts them too, with "-" and "_" alike) -> the mode
MODE_SPELLINGS: dict[str, str] = {"codesign": "codesign", "structure": "structure", "folding": "folding",
                                  "forward-folding": "folding", "inverse-folding": "inverse_folding"}

#: rotation generators (MultiFlow's geodesic flow, the vMF jump of GM section 9, or their superposition) and
#: sequence generators (MultiFlow's purity sampler, the KO mask CTMC); the same names as pipeline.proteins.flow
ROTATIONS: tuple[str, ...] = ("flow", "jump", "superposition")
SEQUENCES: tuple[str, ...] = ("purity", "ko")

#: ProteinMPNN weights (the protocol's: v_48_020) and weight families (full backbone, or soluble proteins only)
MPNN_MODELS: tuple[str, ...] = ("v_48_002", "v_48_010", "v_48_020", "v_48_030")
MPNN_FAMILIES: tuple[str, ...] = ("vanilla", "soluble")

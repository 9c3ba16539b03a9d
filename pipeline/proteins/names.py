"""Names that protein configs and the command line choose from; importable without torch."""

from __future__ import annotations

from typing import Literal, get_args

#: what the sampler generates: co-design, structure only, forward folding (sequence given), inverse folding
Mode = Literal["codesign", "structure", "folding", "inverse_folding"]
MODES: tuple[str, ...] = get_args(Mode)

#: network precisions: float32, or bfloat16 autocast (about 2x faster on CPUs with AVX512-BF16 and on GPUs)
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")

"""Loading CHGNet (weights shipped in the chgnet wheel; nothing is downloaded)."""

from __future__ import annotations

import contextlib
import io
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from chgnet.model import CHGNet

CHGNET_MODELS = ("0.3.0", "0.2.0", "r2scan")
DEFAULT_MODEL = "0.3.0"
# CHGNet predicts stress in GPa; ASE wants eV/Angstrom^3 (1 eV/A^3 = 160.21766208 GPa).
STRESS_WEIGHT = 1.0 / 160.21766208


@lru_cache(maxsize=4)
def load_chgnet(model: str = DEFAULT_MODEL) -> "CHGNet":
    """The pretrained CHGNet ``model`` ("0.3.0" default, "0.2.0", "r2scan") on CPU, eval mode."""
    if model not in CHGNET_MODELS:
        raise ValueError(f"unknown CHGNet model {model!r}; choose one of {', '.join(CHGNET_MODELS)}")
    from chgnet.model import CHGNet

    with contextlib.redirect_stdout(io.StringIO()):
        m = CHGNet.load(model_name=model, use_device="cpu", verbose=False)
    return m.eval()


def single_threaded_blas():
    """Context manager: BLAS/OpenMP pools of numpy/scipy at 1 thread (``threadpoolctl``).

    ASE's FrechetCellFilter does 3x3 / 9x9 ``expm_frechet`` / ``logm`` every step; with a
    multi-threaded OpenBLAS on a busy machine each tiny solve can take milliseconds of spinning
    (measured 14x slower relaxations on 2 shared cores). Torch's own threads are not touched.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - comes with scikit-learn (matminer)
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")

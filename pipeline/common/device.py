"""The compute device of a run: ``cpu`` or ``cuda[:i]``, checked once (spelling, and that the GPU exists here).

Torch is imported only to check a ``cuda`` device, so the command line can check ``--device`` when it parses it.
"""

from __future__ import annotations

import re

from structures.errors import InputError

_DEVICE = re.compile(r"(cpu|cuda)(:(\d+))?")

__all__ = ["check_device"]


def check_device(name: str, value: object) -> str:
    """``value`` if it is ``cpu`` or a ``cuda[:i]`` device present on this machine, else :class:`InputError`
    (``name`` says where the value came from: ``--device`` or ``ProteinGenerateConfig.device``)."""
    m = _DEVICE.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise InputError(f"{name} must be 'cpu' or 'cuda[:i]', got {value!r}")
    if m.group(1) == "cpu":
        if m.group(2):
            raise InputError(f"{name} must be 'cpu' or 'cuda[:i]', got {value!r} (the CPU has no index)")
        return value
    import torch

    if not torch.cuda.is_available():
        raise InputError(f"{name} {value!r} is not available on this machine (no CUDA GPU); use 'cpu'")
    index, count = int(m.group(3) or 0), torch.cuda.device_count()
    if index >= count:
        raise InputError(f"{name} {value!r} is not available on this machine ({count} CUDA GPU(s): "
                         f"cuda:0 to cuda:{count - 1}); choose one of them or 'cpu'")
    return value

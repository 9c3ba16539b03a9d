"""Read a torch zip checkpoint (``torch.save``, e.g. a Lightning ``.ckpt``) without running its code.

A pickle can name any importable callable and have the unpickler call it. This reader's
:class:`RestrictedUnpickler` resolves only an allow-list of globals:

- plain containers and scalars (``dict``, ``list``, ``tuple``, ``set``, ``int``, ``float``, ...,
  ``collections.OrderedDict`` / ``defaultdict``, ``_codecs.encode`` for bytes);
- tensor rebuilding (``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter*``, storage types,
  dtypes, ``torch.Size`` / ``device``) -- replaced by our own functions that only view the stored bytes;
- classes of OmegaConf, Lightning, numpy and ``typing`` (``hyper_parameters``, callback states):
  **inert stand-ins** that record their arguments and state and execute nothing of the original
  class (:func:`plain` turns OmegaConf stand-ins back into dicts and lists).

Any other global (``os.system``, ``builtins.eval``, ``subprocess.Popen``, ...) stops the read with
:class:`UnsafeCheckpointError` before anything is called: the semantics of
``torch.load(weights_only=True)``, plus inert OmegaConf objects.
"""

from __future__ import annotations

import builtins
import collections
import io
import pickle
import sys
import zipfile
from pathlib import Path
from typing import Any

import torch

from structures.errors import InputError

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool, "ComplexFloatStorage": torch.complex64, "ComplexDoubleStorage": torch.complex128,
    "UntypedStorage": torch.uint8,
}
_SAFE_BUILTINS = {"dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "str", "bytes",
                  "bytearray", "bool", "slice", "range", "long", "unicode"}
_INERT_PREFIXES = ("omegaconf", "lightning", "pytorch_lightning", "lightning_fabric", "numpy", "typing", "enum")


class CheckpointError(InputError):
    """A checkpoint that cannot be used; one line: which file, what is wrong, what to do."""


class UnsafeCheckpointError(CheckpointError):
    """The checkpoint's pickle names a global that could run code; nothing was executed."""


class Inert:
    """Stand-in for a non-tensor class in a checkpoint: keeps arguments, items and state, runs nothing."""

    origin = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "Inert":  # called by NEWOBJ and by REDUCE (via __call__)
        obj = super().__new__(cls)
        obj.args, obj.kwargs, obj.state, obj.items = args, kwargs, None, {}
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value

    def append(self, value: Any) -> None:
        self.items[len(self.items)] = value

    def extend(self, values: Any) -> None:
        for v in values:
            self.append(v)

    def __repr__(self) -> str:
        return f"<inert {self.origin}>"


class _StorageType:
    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


def _rebuild_tensor(storage: torch.Tensor, offset: int, size: Any, stride: Any, *_: Any) -> torch.Tensor:
    """A view of the flat storage tensor (no code of the checkpoint runs)."""
    if not isinstance(storage, torch.Tensor):
        raise UnsafeCheckpointError("tensor data does not come from the checkpoint's storage records")
    return storage.as_strided(tuple(size), tuple(stride), int(offset))


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    return data


def _rebuild_from_type(func: Any, _type: Any, args: Any, _state: Any) -> Any:
    if func not in (_rebuild_tensor, _rebuild_parameter):
        raise UnsafeCheckpointError("a tensor is rebuilt by a function outside the allow-list")
    return func(*args)


_TORCH_FUNCS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("torch._tensor", "Tensor"): Inert, ("torch", "Tensor"): Inert, ("torch.nn.parameter", "Parameter"): Inert,
}
_INERT_CLASSES: dict[str, type] = {}


def inert_class(origin: str) -> type:
    """The (cached) stand-in class for ``module.name``."""
    if origin not in _INERT_CLASSES:
        _INERT_CLASSES[origin] = type(origin.rsplit(".", 1)[-1], (Inert,), {"origin": origin})
    return _INERT_CLASSES[origin]


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler of ``data.pkl`` with the allow-list above; storages are read from the zip lazily."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, source: str) -> None:
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix, self.source = archive, prefix, source
        self.storages: dict[str, torch.Tensor] = {}

    def find_class(self, module: str, name: str) -> Any:
        module = {"__builtin__": "builtins", "copy_reg": "copyreg"}.get(module, module)
        if module == "builtins" and name in _SAFE_BUILTINS:
            return getattr(builtins, {"long": "int", "unicode": "str"}.get(name, name))
        if module == "collections" and name in ("OrderedDict", "defaultdict"):
            return getattr(collections, name)
        if module == "_codecs" and name == "encode":
            return _latin1_encode
        if (module, name) in _TORCH_FUNCS:
            return _TORCH_FUNCS[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if module.split(".")[0] in _INERT_PREFIXES:
            return inert_class(f"{module}.{name}")
        raise UnsafeCheckpointError(
            f"{self.source}: refused: its pickle calls {module}.{name}, which could run code; nothing was "
            "executed (only tensors, plain data and inert OmegaConf/Lightning objects are read)")

    def persistent_load(self, pid: Any) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise UnsafeCheckpointError(f"{self.source}: refused: unknown persistent record {str(pid)[:60]!r}")
        dtype, key = pid[1].dtype, str(pid[2])
        if key not in self.storages:
            name = f"{self.prefix}data/{key}"
            try:
                raw = bytearray(self.archive.read(name))
            except KeyError:
                raise CheckpointError(f"{self.source}: storage {name} is missing; the file is truncated") from None
            self.storages[key] = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        return self.storages[key]


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    if encoding not in ("latin1", "latin-1"):
        raise UnsafeCheckpointError(f"refused: _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def read_torch_zip(path: str | Path) -> Any:
    """The object a ``torch.save`` zip file holds, read with :class:`RestrictedUnpickler` (CPU tensors)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}; give the path of a .ckpt or .safetensors file")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a zip-format torch checkpoint (legacy and raw pickle files are not "
                              "read, they could run code); re-save it with torch.save (torch >= 1.6)")
    with zipfile.ZipFile(path) as archive:
        pkl = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pkl) != 1:
            raise CheckpointError(f"{path}: not a torch checkpoint (no single <name>/data.pkl in the zip)")
        prefix = pkl[0][: -len("data.pkl")]
        order = prefix + "byteorder"
        if order in archive.namelist() and archive.read(order).decode().strip() != sys.byteorder:
            raise CheckpointError(f"{path}: written on a {archive.read(order).decode()}-endian machine; "
                                  "re-save it on this one")
        try:
            return RestrictedUnpickler(archive.read(pkl[0]), archive, prefix, str(path)).load()
        except CheckpointError:
            raise
        except Exception as exc:  # malformed pickle: EOF, bad opcode, wrong arity ...
            raise CheckpointError(f"{path}: unreadable checkpoint pickle ({type(exc).__name__}: {exc})") from None


def plain(obj: Any) -> Any:
    """OmegaConf stand-ins (DictConfig / ListConfig / value nodes) and containers -> dicts, lists, values."""
    if isinstance(obj, Inert):
        state = obj.state if isinstance(obj.state, dict) else {}
        if "_content" in state:
            return plain(state["_content"])
        if "_val" in state:
            return plain(state["_val"])
        if obj.items:
            return {k: plain(v) for k, v in obj.items.items()}
        return obj
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj

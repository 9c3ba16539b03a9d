"""One run mechanism for every stage: an output folder that resumes, refuses other work, and locks.

Every stage that writes an output folder (generate, relax, score, train, the demo and its stages)
opens it with :func:`open_run`. The folder's ``run.json`` records the stage (``kind``), its
``settings`` and a fingerprint of its ``inputs`` (file *contents*, not names:
:func:`fingerprint`). The rules, in order:

1. The caller validates every input and option *before* :func:`open_run`; ``open_run`` itself
   checks the folder before it creates or changes anything.
2. A missing or empty folder is created and gets a new ``run.json``.
3. The same kind, settings and inputs: the run resumes. Temporary files of an interrupted run
   (``.*.tmp``, left by :mod:`structures.atomic` after a kill -9) are removed.
4. Another run: :class:`~structures.errors.InputError` naming what differs, touching nothing,
   unless ``restart=True``, which empties the folder first. A run that never recorded a result
   (only ``run.json`` is there: a failed start) is replaced without ``restart``.
5. A non-empty folder without ``run.json`` is not a genmatch run folder: refused even with
   ``restart`` (files genmatch did not write are never deleted).
6. An exclusive lock (``.genmatch.lock``, ``flock``) is held while the run is open: a second
   process working in the same folder is refused at once, with the holder's pid.

    settings = {"fmax": 0.1, "max_steps": 1500}
    with open_run(out, "relax-crystals", settings, fingerprint(input_files), restart=False) as run:
        ...  # write results under run.path, atomically
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from structures.atomic import atomic_open
from structures.errors import InputError
from structures.version import genmatch_version

RUN_FILE = "run.json"
LOCK_FILE = ".genmatch.lock"
RUN_FORMAT = 2
_BOOKKEEPING = {RUN_FILE, LOCK_FILE}


def fingerprint(parts: Iterable[Any]) -> str:
    """SHA-256 (hex, 32 characters) of a sequence of inputs, by content.

    Each part may be ``bytes``, ``str``, a number, a numpy array, a :class:`os.PathLike` (the
    file's *bytes* are hashed, never its name), or a nested list/tuple of these. The order counts.
    """
    h = hashlib.sha256()

    def add(p: Any) -> None:
        if isinstance(p, (bytes, bytearray, memoryview)):
            h.update(b"b"), h.update(len(p).to_bytes(8, "little")), h.update(p)
        elif isinstance(p, str):
            add(p.encode("utf-8", "surrogatepass"))
        elif isinstance(p, os.PathLike):
            with open(p, "rb") as f:
                while block := f.read(1 << 20):
                    h.update(block)
            h.update(b"\0file")
        elif isinstance(p, np.ndarray):
            add(str(p.dtype) + str(p.shape))
            add(np.ascontiguousarray(p).tobytes())
        elif isinstance(p, (list, tuple)):
            h.update(b"[")
            for q in p:
                add(q)
            h.update(b"]")
        elif p is None or isinstance(p, (bool, int, float, np.generic)):
            add(repr(p.item() if isinstance(p, np.generic) else p))
        else:
            raise TypeError(f"cannot fingerprint a {type(p).__name__}")

    for part in parts:
        add(part)
    return h.hexdigest()[:32]


@dataclass(frozen=True)
class RunRecord:
    """What ``OUT/run.json`` holds: the stage, its settings and the fingerprint of its inputs."""

    kind: str
    settings: dict[str, Any]
    inputs: str
    format: int = RUN_FORMAT
    genmatch: str = field(default="", compare=False)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True, default=_plain) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "RunRecord":
        d = json.loads(text)
        if not isinstance(d, dict) or "kind" not in d or "settings" not in d:
            raise ValueError("not a genmatch run record")
        return cls(kind=str(d["kind"]), settings=dict(d["settings"]), inputs=str(d.get("inputs", "")),
                   format=int(d.get("format", 1)), genmatch=str(d.get("genmatch", "")))

    def differences(self, other: "RunRecord") -> list[str]:
        """Names of what differs: 'kind', 'inputs', 'format' or the setting keys."""
        out = [k for k in ("kind", "format", "inputs") if getattr(self, k) != getattr(other, k)]
        a, b = _normalise(self.settings), _normalise(other.settings)
        return out + sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _plain(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (Path, os.PathLike)):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _normalise(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings as they read back from JSON (tuples -> lists, numpy scalars -> Python)."""
    return json.loads(json.dumps(settings, sort_keys=True, default=_plain))


@dataclass
class Run:
    """An open run folder (see the module docstring). ``resumed``: an earlier run's results are kept."""

    path: Path
    record: RunRecord
    resumed: bool
    _lock: Any = field(default=None, repr=False)

    def close(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None


def is_empty_run(path: Path) -> bool:
    """True when ``path`` holds nothing but bookkeeping (run record, lock, temporary files)."""
    return all(p.name in _BOOKKEEPING or _is_temporary(p) for p in path.iterdir())


def _is_temporary(p: Path) -> bool:
    return p.name.startswith(".") and p.name.endswith(".tmp")


def remove_temporaries(path: Path) -> int:
    """Delete the temporary files an interrupted atomic write left under ``path``; return how many."""
    n = 0
    for p in path.rglob(".*.tmp"):
        if p.is_file():
            p.unlink(missing_ok=True)
            n += 1
    return n


def _lock(path: Path) -> Any:
    f = open(path / LOCK_FILE, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "?"
        f.close()
        raise InputError(f"{path}: another genmatch process (pid {holder}) is working in this folder; "
                         "wait for it to finish or choose another output folder") from None
    return f


def _claim(f: Any) -> None:
    """Write our pid into the held lock file (only once the run is accepted: a refusal changes nothing)."""
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()


def _check_writable(path: Path) -> None:
    """Create ``path`` (and parents) or raise :class:`InputError` saying why not."""
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: the output path is a file, not a folder; choose a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{path}: cannot create the output folder ({exc.strerror}); choose a writable "
                         "location") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"{path}: the output folder is not writable; choose a writable location")


def _clear(path: Path) -> None:
    for p in path.iterdir():
        if p.name == LOCK_FILE:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


@contextlib.contextmanager
def open_run(out_dir: str | os.PathLike, kind: str, settings: dict[str, Any], inputs: str, *,
             restart: bool = False) -> Iterator[Run]:
    """Open (create, resume, take over or refuse) the run folder ``out_dir``; see the module docstring.

    Raises:
        InputError: the folder holds another run (without ``restart``), is not a run folder, is
            not writable, or another process works in it. Nothing is changed in these cases.
    """
    _check_settings_finite(settings)
    path = Path(out_dir)
    want = RunRecord(kind=kind, settings=_normalise(settings), inputs=inputs, genmatch=genmatch_version())
    existed = path.is_dir()
    lock_existed = (path / LOCK_FILE).exists()
    _check_writable(path)
    run = Run(path=path, record=want, resumed=False)
    try:
        run._lock = _lock(path)
        _settle(path, want, restart, run)
        _claim(run._lock)
    except BaseException:  # refused: leave the folder exactly as it was
        _undo(run, existed, lock_existed)
        raise
    try:
        yield run
    except InputError:  # bad input found late (e.g. a model's weights): a new run leaves nothing behind
        if not run.resumed and is_empty_run(path):
            remove_temporaries(path)
            (path / RUN_FILE).unlink(missing_ok=True)
            _undo(run, existed, lock_existed)
        raise
    finally:
        run.close()


def _undo(run: Run, existed: bool, lock_existed: bool) -> None:
    """Release the lock and remove the lock file and the folder where this call made them."""
    run.close()
    if not lock_existed:
        (run.path / LOCK_FILE).unlink(missing_ok=True)
    if not existed:
        with contextlib.suppress(OSError):
            run.path.rmdir()


def _settle(path: Path, want: RunRecord, restart: bool, run: Run) -> None:
    """Decide between a new run, a resume, a take-over and a refusal (the lock is held)."""
    rec_path = path / RUN_FILE
    old: RunRecord | None = None
    if rec_path.is_file():
        try:
            old = RunRecord.from_json(rec_path.read_text())
        except (ValueError, UnicodeDecodeError):
            raise InputError(f"{rec_path}: unreadable run record; remove the folder or choose another "
                             "output folder") from None
    elif not is_empty_run(path):
        raise InputError(f"{path}: the folder is not empty and holds no genmatch run; choose a new or empty "
                         "output folder (genmatch never deletes files it did not write)")
    if old is not None and not restart:
        diff = old.differences(want)
        if not diff:
            remove_temporaries(path)
            run.resumed = True
            return
        if not is_empty_run(path):
            what = ", ".join(diff[:6]) + (" ..." if len(diff) > 6 else "")
            raise InputError(f"{path} holds a {old.kind} run with other {what}; choose another output folder, "
                             "or pass --restart to discard it")
    _clear(path)
    with atomic_open(rec_path) as f:
        f.write(want.to_json())


def _check_settings_finite(settings: dict[str, Any]) -> None:
    for k, v in settings.items():
        if isinstance(v, float) and not math.isfinite(v):
            raise InputError(f"setting {k!r} must be a finite number, got {v}")

"""Sample ids derived from user-given names (file names, FASTA headers, chain ids): safe as file names.

An id names rows of tables and output files (``pdb/<id>_0001.pdb``), so it must be valid on every file
system and in every encoding. :func:`safe_id` keeps a name that is already safe and otherwise derives one:

* only ASCII letters, digits and ``. _ + -`` are kept; any other character (a space, ``/``, ``:``, a
  non-ASCII letter, a byte of a file name that is not valid UTF-8) becomes ``_``;
* no leading ``.`` or ``-`` (hidden files, options), no trailing ``.``, no Windows device name (``CON``, ...),
  at most :data:`MAX_ID` characters;
* a changed name gets ``-<6 hex>`` of a hash of the original appended, so two different names never
  become the same id (and the id is the same on every run: resuming keeps it).
"""

from __future__ import annotations

import hashlib
import re

#: the longest id (file systems allow 255 bytes; outputs add suffixes such as ``_0001.pdb``)
MAX_ID = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")
_WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}


def safe_id(name: str) -> str:
    """``name`` if it is a safe id, else a safe ASCII id derived from it (module docstring)."""
    ident = _UNSAFE.sub("_", name)
    ident = re.sub(r"^[.-]", "_", ident)
    ident = re.sub(r"\.$", "_", ident)
    if ident == name and ident and len(ident) <= MAX_ID and ident.split(".")[0].upper() not in _WINDOWS_DEVICES:
        return ident
    raw = name.encode("utf-8", "surrogatepass")  # file names that are not UTF-8 carry surrogate escapes
    digest = hashlib.sha256(raw).hexdigest()[:6]
    return f"{ident[:MAX_ID - 7] or 'x'}-{digest}"

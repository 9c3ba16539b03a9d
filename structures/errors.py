"""Error types shared by every layer above ``manifolds/``.

:class:`InputError` is *bad input*: a file, option or folder that the user gave and can fix. Its
message says what is wrong, where, and how to fix it, in one line. The command line turns it into
exit code 2 with that line on stderr; anything else that escapes a command is a bug (exit 1).
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input the user can fix (exit code 2 at the command line). One line: what, where, how to fix."""

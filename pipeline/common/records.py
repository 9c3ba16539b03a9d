"""Typed records between layers: dataclasses that read and write themselves as JSON.

Every run summary (generate, relax, score, the demo) and the model record is a dataclass deriving
from :class:`JsonRecord`, so a layer hands the next one named, typed fields instead of a string-keyed
dict, and ``X.from_json(x.to_json()) == x`` (tested).
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import Any, TypeVar

R = TypeVar("R", bound="JsonRecord")


class JsonRecord:
    """Mixin for dataclasses: ``to_dict`` / ``to_json`` / ``from_dict`` / ``from_json``."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    def to_json(self) -> str:
        from pipeline.common.io import json_default

        return json.dumps(self.to_dict(), indent=1, sort_keys=True, default=json_default) + "\n"

    @classmethod
    def from_dict(cls: type[R], d: dict[str, Any]) -> R:
        """Build from a dict; unknown keys are refused (a record of another kind), missing ones take defaults."""
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown fields {', '.join(unknown[:5])}")
        return cls(**d)

    @classmethod
    def from_json(cls: type[R], text: str) -> R:
        return cls.from_dict(json.loads(text))

"""A design campaign's spec: one TOML file read into frozen dataclasses, validated once, before anything runs.

    [campaign]
    name = "perovskites"
    material = "crystals"          # or "proteins"

    [[stage]]
    kind = "generate"              # the fields of CrystalGenerateConfig / ProteinGenerateConfig
    n = 100
    [stage.conditions]             # CrystalConditions / ProteinConditions ([[stage.conditions]]: several, crystals)
    elements = "Ba,Sr,Ti,O"

    [[stage]]
    kind = "relax"                 # CrystalRelaxConfig
    [[stage]]
    kind = "score"                 # CrystalScoreConfig / ProteinScoreConfig
    reference = "perov_5:test"
    [[stage]]
    kind = "filter"
    expr = "valid and density > 3"
    [[stage]]
    kind = "rank"
    method = "weighted"            # or "pareto"
    columns = ["density"]
    ascending = false
    [[stage]]
    kind = "export"
    top_k = 10                     # formats = ["cif"], plots = true

The stage kinds and their order: ``generate`` first (once); ``relax`` (once) after it and before ``score``;
``score`` (once); ``filter``, ``deduplicate`` and ``rank`` after ``score``, any number; ``export`` last. Filter
expressions and rank columns are checked against the columns the score stage produces, with a relax stage also
its ``relax_`` columns (:func:`workflows.design.settings.score_columns`). Relative paths (a seed CIF, a motif PDB,
a model file) are taken relative to the spec file's folder. Every problem is an :class:`~structures.errors.InputError`
``SPEC.toml:LINE: stage[i].key: what is wrong``, the line found by :mod:`workflows.design.locate`.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from structures.errors import InputError
from workflows.design.expressions import BOOL, NUM, parse_expression
from workflows.design.locate import Path as KeyPath
from workflows.design.locate import format_path, key_lines, line_of
from workflows.design.settings import (EXPORT_FORMATS, RANK_COLUMNS, RANK_METHODS, DeduplicateSettings,
                                       ExportSettings, FilterSettings, RankSettings, finite, missing_column_hint,
                                       score_columns)

__all__ = ["KINDS", "MATERIALS", "CampaignSpec", "Stage", "load_spec", "parse_spec"]

MATERIALS = ("crystals", "proteins")
KINDS = ("generate", "relax", "score", "filter", "deduplicate", "rank", "export")
#: settings whose string values are files: taken relative to the spec's folder when that file exists
PATH_KEYS = {"model", "sequence_in", "structure_in", "seed", "predictor", "motif", "refine", "reference", "hull",
             "hull_reference", "training", "esmfold", "energies"}
_CLASS_FIELD = re.compile(r"\b(\w+(?:Config|Conditions))\.(\w+)")
_NESTED = {"MpnnConfig": ("mpnn",)}  # configs that are a table inside a stage


@dataclass(frozen=True)
class Stage:
    """One stage: its position, ``kind``, the ``settings`` as given (paths resolved; what its key hashes) and the
    validated ``config`` (a pipeline config, or one of :mod:`workflows.design.settings`)."""

    index: int
    kind: str
    settings: dict[str, Any]
    config: Any
    line: int


@dataclass(frozen=True)
class CampaignSpec:
    """A validated campaign: ``name``, ``material``, its ``stages`` in order, and where it was read from."""

    name: str
    material: str
    stages: tuple[Stage, ...]
    source: str = "<spec>"

    def stage(self, kind: str) -> Stage | None:
        return next((s for s in self.stages if s.kind == kind), None)


class _Checker:
    """Builds errors that name the key and its line."""

    def __init__(self, text: str, source: str) -> None:
        self.source, self.lines = source, key_lines(text)

    def error(self, path: KeyPath, message: str) -> InputError:
        return InputError(f"{self.source}:{line_of(self.lines, path)}: {format_path(path)}: {message}")

    def check_keys(self, path: KeyPath, table: dict[str, Any], valid: list[str], what: str) -> None:
        for key in table:
            if key not in valid:
                close = difflib.get_close_matches(key, valid, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise self.error(path + (key,), f"unknown setting {key!r} of {what}; {hint}valid: {', '.join(valid)}")

    def build(self, path: KeyPath, make: Callable[[], Any]) -> Any:
        """``make()``, its InputError re-raised at the key its message names (``Class.field`` -> ``path.field``;
        a nested config's field, ``MpnnConfig.field`` -> ``path.mpnn.field``)."""
        try:
            return make()
        except InputError as exc:
            m = _CLASS_FIELD.search(str(exc))
            key = path + _NESTED.get(m.group(1), ()) + (m.group(2),) if m else path
            raise self.error(key, str(exc)) from None


def _resolve_paths(table: dict[str, Any], base: Path) -> dict[str, Any]:
    """``table`` with the relative paths of :data:`PATH_KEYS` that exist under ``base`` made ``base / path``
    (nested tables too: the conditions)."""
    out = {}
    for k, v in table.items():
        if k in PATH_KEYS and isinstance(v, str) and v and not Path(v).is_absolute() and (base / v).exists():
            v = str(base / v)
        elif isinstance(v, dict):
            v = _resolve_paths(v, base)
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            v = [_resolve_paths(x, base) for x in v]
        out[k] = v
    return out


def _config_fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.init]


def _classes(material: str, kind: str) -> Any:
    """The pipeline config class of a stage (and its conditions class for generate)."""
    if material == "crystals":
        if kind == "generate":
            from pipeline.crystals.conditions import CrystalConditions
            from pipeline.crystals.generate import CrystalGenerateConfig

            return CrystalGenerateConfig, CrystalConditions
        if kind == "relax":
            from pipeline.crystals.relax.run import CrystalRelaxConfig

            return CrystalRelaxConfig, None
        from pipeline.crystals.score.config import CrystalScoreConfig

        return CrystalScoreConfig, None
    if kind == "generate":
        from pipeline.proteins.conditions import ProteinConditions
        from pipeline.proteins.generate import ProteinGenerateConfig

        return ProteinGenerateConfig, ProteinConditions
    if kind == "relax":
        from pipeline.proteins.relax.config import ProteinRelaxConfig

        return ProteinRelaxConfig, None
    from pipeline.proteins.score.config import ProteinScoreConfig

    return ProteinScoreConfig, None


def _pipeline_stage(c: _Checker, material: str, kind: str, path: KeyPath, table: dict[str, Any], base: Path) -> Any:
    cls, cond_cls = _classes(material, kind)
    valid = _config_fields(cls)
    c.check_keys(path, table, valid, f"a {material} {kind} stage ({cls.__name__})")
    fields = _resolve_paths(table, base)
    if cond_cls is not None and "conditions" in fields:
        fields["conditions"] = _conditions(c, material, cond_cls, path + ("conditions",), fields["conditions"], base)
    return c.build(path, lambda: cls(**fields))


def _conditions(c: _Checker, material: str, cls: type, path: KeyPath, value: Any, base: Path) -> Any:
    tables = [value] if isinstance(value, dict) else value
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise c.error(path, "must be a table [stage.conditions] (or, for crystals, tables [[stage.conditions]])")
    if material == "proteins" and len(tables) > 1:
        raise c.error(path, "a proteins generate stage takes one conditions table, not several")
    out = []
    for j, t in enumerate(tables):
        at = path if isinstance(value, dict) else path + (j,)
        c.check_keys(at, t, _config_fields(cls), f"{cls.__name__}")
        fields = _resolve_paths(t, base)
        out.append(c.build(at, lambda fields=fields: cls(**fields)))
    return out[0] if material == "proteins" else tuple(out)


def _get(c: _Checker, path: KeyPath, table: dict[str, Any], key: str, default: Any, ok: Callable[[Any], bool],
         what: str) -> Any:
    value = table.get(key, default)
    if key in table and not ok(value):
        raise c.error(path + (key,), f"must be {what}, got {value!r}")
    return value


def _per_column(c: _Checker, path: KeyPath, table: dict[str, Any], key: str, n: int, default: Any,
                ok: Callable[[Any], bool], what: str) -> tuple[Any, ...]:
    value = table.get(key, default)
    values = value if isinstance(value, list) else [value] * n
    if len(values) != n or not all(ok(v) for v in values):
        raise c.error(path + (key,), f"must be {what} or a list of {n} (one per column), got {value!r}")
    return tuple(values)


def _own_stage(c: _Checker, material: str, kind: str, path: KeyPath, table: dict[str, Any],
               columns: dict[str, str]) -> Any:
    """The settings of a filter / deduplicate / rank / export stage, checked against the table's ``columns``."""
    if kind == "filter":
        c.check_keys(path, table, ["expr"], "a filter stage")
        if "expr" not in table:
            raise c.error(path, "a filter stage needs expr = \"...\", e.g. expr = \"valid and density > 3\"")
        try:
            expr = parse_expression(table["expr"], "filter")
            expr.check(columns)
        except InputError as exc:
            m = re.search(r"unknown column '(\w+)'", str(exc))
            hint = missing_column_hint(material, m.group(1)) if m else ""
            raise c.error(path + ("expr",), str(exc) + (f"; {hint}" if hint else "")) from None
        return FilterSettings(expr)
    if kind == "deduplicate":
        keys = ["ltol", "stol", "angle_tol"] if material == "crystals" else ["tm_threshold"]
        c.check_keys(path, table, keys, f"a {material} deduplicate stage")
        d = DeduplicateSettings()
        vals = {k: _get(c, path, table, k, getattr(d, k), lambda v: finite(v) and v > 0, "a number > 0")
                for k in keys}
        if vals.get("tm_threshold", 0.5) >= 1:
            raise c.error(path + ("tm_threshold",), f"must be in (0, 1), got {vals['tm_threshold']!r}")
        return DeduplicateSettings(**vals)
    if kind == "rank":
        c.check_keys(path, table, ["method", "columns", "weights", "ascending"], "a rank stage")
        method = _get(c, path, table, "method", "weighted", lambda v: v in RANK_METHODS,
                      " or ".join(repr(m) for m in RANK_METHODS))
        cols = table.get("columns")
        if not isinstance(cols, list) or not cols or not all(isinstance(x, str) for x in cols):
            raise c.error(path + ("columns",), f"a rank stage needs columns = [\"...\"], a non-empty list of "
                          f"score columns, got {cols!r}")
        for col in cols:
            if col not in columns or columns[col] not in (NUM, BOOL):
                why = ("is not a number column" if col in columns else "is not a column of the score table" +
                       (f" ({missing_column_hint(material, col)})" if missing_column_hint(material, col) else ""))
                raise c.error(path + ("columns",), f"{col!r} {why}; numeric columns: "
                              f"{', '.join(k for k, t in columns.items() if t == NUM)}")
        weights = _per_column(c, path, table, "weights", len(cols), 1.0, lambda v: finite(v) and v >= 0,
                              "a number >= 0")
        if method == "pareto" and "weights" in table:
            raise c.error(path + ("weights",), "a pareto rank takes no weights; remove them or use "
                          "method = \"weighted\"")
        asc = _per_column(c, path, table, "ascending", len(cols), True, lambda v: isinstance(v, bool),
                          "true (smaller is better) or false")
        return RankSettings(method, tuple(cols), tuple(float(w) for w in weights), asc)
    c.check_keys(path, table, ["top_k", "formats", "plots"], "an export stage")
    top_k = _get(c, path, table, "top_k", 10, lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                 "an integer >= 1")
    allowed = EXPORT_FORMATS[material]
    formats = _get(c, path, table, "formats", [allowed[0]],
                   lambda v: isinstance(v, list) and v and all(f in allowed for f in v),
                   f"a non-empty list of {', '.join(repr(f) for f in allowed)}")
    plots = _get(c, path, table, "plots", True, lambda v: isinstance(v, bool), "true or false")
    return ExportSettings(top_k, tuple(dict.fromkeys(formats)), plots)


def _check_order(c: _Checker, kinds: list[str]) -> None:
    """The kinds in an order whose every stage gets the input it takes (module docstring)."""
    seen: list[str] = []
    for i, kind in enumerate(kinds):
        path: KeyPath = ("stage", i, "kind")
        if kind in ("generate", "relax", "score", "export") and kind in seen:
            raise c.error(path, f"a campaign has one {kind} stage; this is the second")
        if kind == "generate" and i:
            raise c.error(path, "generate must be the first stage (it makes the campaign's structures)")
        if kind != "generate" and "generate" not in seen:
            raise c.error(path, f"a {kind} stage needs structures: put a generate stage first")
        if kind == "relax" and "score" in seen:
            raise c.error(path, "relax after score: the score table would describe other structures; move relax "
                          "before score")
        if kind in ("filter", "deduplicate", "rank", "export") and "score" not in seen:
            raise c.error(path, f"a {kind} stage works on the score table: put a score stage before it")
        if "export" in seen:
            raise c.error(path, f"a {kind} stage after export: export must be the last stage")
        seen.append(kind)


def parse_spec(text: str, source: str = "<spec>", base_dir: str | Path = ".") -> CampaignSpec:
    """The validated :class:`CampaignSpec` of the TOML ``text`` (module docstring); InputError naming the key and
    its line on the first problem."""
    c = _Checker(text, source)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{source}: not valid TOML: {exc}") from None
    c.check_keys((), doc, ["campaign", "stage"], "a campaign spec")
    camp = doc.get("campaign")
    if not isinstance(camp, dict):
        raise c.error(("campaign",), "the spec needs a [campaign] table with name and material")
    c.check_keys(("campaign",), camp, ["name", "material"], "[campaign]")
    name = camp.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise c.error(("campaign", "name"), f"must be a non-empty string, got {name!r}")
    material = camp.get("material")
    if material not in MATERIALS:
        raise c.error(("campaign", "material"), f"must be \"crystals\" or \"proteins\", got {material!r}")
    tables = doc.get("stage")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise c.error(("stage",), "the spec needs stages: [[stage]] tables, each with a kind")
    for i, t in enumerate(tables):
        kind = t.get("kind")
        if kind not in KINDS:
            raise c.error(("stage", i, "kind") if "kind" in t else ("stage", i),
                          f"unknown stage kind {kind!r}; one of {', '.join(KINDS)}")
        if "material" in t and t["material"] != material:
            raise c.error(("stage", i, "material"), f"a {t['material']} {kind} stage cannot take the {material} "
                          "this campaign makes; remove it or change [campaign] material")
    _check_order(c, [t["kind"] for t in tables])
    base = Path(base_dir)
    stages, columns = [], {}
    for i, t in enumerate(tables):
        kind, path = t["kind"], ("stage", i)
        table = {k: v for k, v in t.items() if k not in ("kind", "material")}
        if kind in ("generate", "relax", "score"):
            config = _pipeline_stage(c, material, kind, path, table, base)
            if kind == "score":
                columns = score_columns(material, config, relax=any(x["kind"] == "relax" for x in tables))
        else:
            config = _own_stage(c, material, kind, path, table, columns)
            if kind == "rank":
                columns = {**columns, **RANK_COLUMNS[config.method]}
        stages.append(Stage(i, kind, _resolve_paths(table, base), config, line_of(c.lines, path)))
    return CampaignSpec(name, material, tuple(stages), source)


def load_spec(path: str | Path) -> CampaignSpec:
    """The validated spec of the TOML file ``path`` (relative paths in it: from its folder)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: cannot read the campaign spec ({exc}); give a TOML file") from None
    return parse_spec(text, str(p), p.parent)

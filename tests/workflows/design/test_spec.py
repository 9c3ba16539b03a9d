"""Campaign specs (workflows.design.spec): a valid spec of each material, and bad specs, each refused with an
InputError naming the TOML key and its line (the line marked '# <-' in the case), before anything runs; the key
locator on arrays of tables, dotted keys and multi-line values."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from structures.errors import InputError
from workflows.design.locate import format_path, key_lines, line_of
from workflows.design.spec import load_spec, parse_spec

sys.path.insert(0, str(Path(__file__).parent))  # the shared specs, imported by their plain name
from design_specs import BASE, PROTEINS  # noqa: E402


def test_a_valid_spec_reads_into_typed_stages() -> None:
    spec = parse_spec(BASE, "c.toml")
    assert (spec.name, spec.material) == ("perov", "crystals")
    assert [s.kind for s in spec.stages] == ["generate", "relax", "score", "filter", "rank", "export"]
    assert [s.line for s in spec.stages] == [6, 13, 17, 22, 26, 31]
    gen = spec.stages[0].config
    assert type(gen).__name__ == "CrystalGenerateConfig" and gen.n == 4 and gen.steps == 5
    assert gen.conditions[0].elements == ("O", "Ti", "Ba") or set(gen.conditions[0].elements) == {"Ba", "Ti", "O"}
    assert spec.stages[4].config.ascending == (False, True) and spec.stages[4].config.weights == (1.0, 1.0)
    assert spec.stages[5].config.formats == ("cif",)


CASES = {
    "unknown kind": ('kind = "relax"', 'kind = "polish"  # <-', r"unknown stage kind 'polish'; one of generate"),
    "unknown setting": ("steps = 5", "stepz = 5  # <-", r"unknown setting 'stepz' .*did you mean 'steps'"),
    "wrong type": ("n = 4", 'n = "four"  # <-', r"stage\[0\]\.n: CrystalGenerateConfig\.n"),
    "wrong type in relax": ("max_steps = 5", "max_steps = 2.5  # <-", r"CrystalRelaxConfig\.max_steps"),
    "filter does not parse": ('expr = "valid and density > 1"', 'expr = "valid and (density > 1"  # <-',
                              r"filter: unexpected end of expression \(expected '\)'\) at column 23"),
    "filter column not scored": ('expr = "valid and density > 1"', 'expr = "e_hull <= 0.1"  # <-',
                                 r"unknown column 'e_hull'"),
    "rank column not scored": ('columns = ["density", "n_atoms"]', 'columns = ["density", "energy"]  # <-',
                               r"'energy' is not a column of the score table"),
    "rank column not a number": ('columns = ["density", "n_atoms"]', 'columns = ["density", "formula"]  # <-',
                                 r"'formula' is not a number column"),
    "rank weights": ("ascending = [false, true]", "ascending = [false, true]\nweights = [1.0]  # <-",
                     r"weights: must be a number >= 0 or a list of 2"),
    "conditions field": ('elements = "Ba,Ti,O"', 'elemnts = "Ba,Ti,O"  # <-', r"unknown setting 'elemnts'"),
    "conditions value": ('elements = "Ba,Ti,O"', 'formula = "Xq2O3"  # <-', r"conditions\.formula: "),
    "material": ('material = "crystals"', 'material = "rocks"  # <-', r"must be \"crystals\" or \"proteins\""),
    "stage material": ('kind = "relax"', 'kind = "relax"\nmaterial = "proteins"  # <-',
                       r"a proteins relax stage cannot take the crystals"),
    "relax after score": ('[[stage]]\nkind = "relax"\nmax_steps = 5\n\n', "", None),
    "filter before score": ('kind = "score"', 'kind = "filter"  # <-',
                            r"a filter stage works on the score table: put a score stage before it"),
    "no generate first": ('kind = "generate"\nn = 4\nsteps = 5\n[stage.conditions]\nelements = "Ba,Ti,O"',
                          'kind = "relax"  # <-', r"a relax stage needs structures"),
    "export not last": ('kind = "rank"', 'kind = "export"', None),
    "export format": ("top_k = 2", 'top_k = 2\nformats = ["xyz"]  # <-', r"formats: must be a non-empty list"),
    "unknown top-level": ("# a small", 'stages = 3  # <-\n# a small', r"unknown setting 'stages' of a campaign spec"),
}


def _expected_line(text: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if "# <-" in line)


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_specs_name_the_key_and_its_line(case: str) -> None:
    old, new, pattern = CASES[case]
    assert old in BASE
    text = BASE.replace(old, new, 1)
    if case == "relax after score":  # move relax after score
        text = text.replace('reference_limit = 5\n', 'reference_limit = 5\n\n[[stage]]\nkind = "relax"  # <-\n', 1)
        pattern = r"relax after score"
    if case == "export not last":  # the rank stage became an export: the next export is the second
        text = text.replace('kind = "export"\ntop_k = 2', 'kind = "filter"  # <-\nexpr = "valid"', 1)
        pattern = r"export must be the last stage"
    with pytest.raises(InputError) as e:
        parse_spec(text, "c.toml")
    msg = str(e.value)
    assert msg.startswith(f"c.toml:{_expected_line(text)}: "), msg
    assert re.search(pattern, msg), msg
    assert "\n" not in msg


def test_several_crystal_conditions() -> None:
    text = BASE.replace('[stage.conditions]\nelements = "Ba,Ti,O"',
                        '[[stage.conditions]]\nformula = "BaTiO3"\n[[stage.conditions]]\nformula = "SrTiO3"')
    assert [c.formula for c in parse_spec(text, "c.toml").stages[0].config.conditions] == ["BaTiO3", "SrTiO3"]
    bad = text.replace('formula = "SrTiO3"', 'formula = "SrTiQ3"  # <-')
    with pytest.raises(InputError, match=r"^c\.toml:13: stage\[0\]\.conditions\[1\]\.formula: CrystalConditions"):
        parse_spec(bad, "c.toml")
    assert _expected_line(bad) == 13
    with pytest.raises(InputError, match=r"stage\[0\]\.conditions: a proteins generate stage takes one"):
        parse_spec(PROTEINS.replace("steps = 2", 'steps = 2\n[[stage.conditions]]\nforbid = "C"\n'
                                    '[[stage.conditions]]\nforbid = "M"'), "p.toml")


def test_toml_syntax_errors_give_the_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(BASE.replace("n = 4", "n = 4 4"))
    with pytest.raises(InputError, match=r"bad\.toml: not valid TOML: .*line 8"):
        load_spec(p)
    with pytest.raises(InputError, match="cannot read the campaign spec"):
        load_spec(tmp_path / "missing.toml")




def test_a_protein_spec_and_its_own_errors() -> None:
    spec = parse_spec(PROTEINS, "p.toml")
    assert [s.kind for s in spec.stages] == ["generate", "score", "deduplicate", "filter", "export"]
    assert spec.stages[1].config.mpnn.n_sequences == 2 and spec.stages[2].config.tm_threshold == 0.6
    bad = {"tm_threshold = 0.6": ("ltol = 0.2  # <-", r"unknown setting 'ltol' of a proteins deduplicate"),
           'expr = "helix > 0.2': ('expr = "e_hull < 1 and helix > 0.2', r"unknown column 'e_hull'"),
           "diversity = true": ("diversity = false\n", None),
           'kind = "deduplicate"': ('kind = "relax"  # <-', r"relax after score: .* move relax before score"),
           "n_sequences = 2": ("n_sequences = 0  # <-", r"stage\[1\]\.mpnn\.n_sequences: MpnnConfig\.n_sequences")}
    for old, (new, pattern) in bad.items():
        text = PROTEINS.replace(old, new, 1)
        if pattern is None:  # no diversity: no cluster column
            pattern = r"unknown column 'cluster'"
        if "<-" not in text:
            text = text.replace('cluster >= 0"', 'cluster >= 0"  # <-', 1)
        with pytest.raises(InputError) as e:
            parse_spec(text, "p.toml")
        assert str(e.value).startswith(f"p.toml:{_expected_line(text)}: ") and re.search(pattern, str(e.value)), \
            str(e.value)


def test_key_lines_of_arrays_dotted_keys_and_multiline_values() -> None:
    text = '''[campaign]
name = "x"   # a comment [[stage]]
[[stage]]
kind = "generate"
a.b = 1
list = [
  "kind = 'not a key'",
  2,
]
s = """
fake = 3
"""
[[stage.conditions]]
formula = "A"
[[stage.conditions]]
formula = "B"
[[stage]]
kind = "score"
inline = {x = 1}
'''
    lines = key_lines(text)
    assert lines[("stage", 0)] == 3 and lines[("stage", 0, "a", "b")] == 5 and lines[("stage", 0, "list")] == 6
    assert ("stage", 0, "fake") not in lines and lines[("stage", 0, "s")] == 10
    assert lines[("stage", 0, "conditions", 1, "formula")] == 16
    assert lines[("stage", 1, "kind")] == 18
    assert line_of(lines, ("stage", 1, "inline", "x")) == 19 and line_of(lines, ("nothing",)) == 1
    assert format_path(("stage", 0, "conditions", 1, "formula")) == "stage[0].conditions[1].formula"


def test_the_docs_example_is_a_valid_spec() -> None:
    text = (Path(__file__).resolve().parents[3] / "docs" / "design.md").read_text(encoding="utf-8")
    example = re.search(r"```toml\n(.*?)```", text, re.S).group(1)
    spec = parse_spec(example, "docs/design.md")
    assert [s.kind for s in spec.stages] == ["generate", "relax", "score", "filter", "deduplicate", "rank", "export"]
    bad = example.replace('hull = "mp-elements"\n', "")  # the documented error: e_hull needs a hull
    with pytest.raises(InputError, match=r"stage\[3\]\.expr: filter: unknown column 'e_hull'.* at column 11 in "
                       r"'valid and e_hull <= 0.1 and n_elements >= 3'; e_hull needs a hull"):
        parse_spec(bad, "docs/design.md")


def test_a_locator_that_ignores_the_stage_index_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mutant maps every [[stage]] to the first one (keys of later stages land on the first stage's lines or
    none): the line check above fails for a key of a later stage."""
    spec_module = sys.modules["workflows.design.spec"]
    real = spec_module.key_lines

    def first_stage_only(text: str) -> dict:
        return {tuple(0 if isinstance(p, int) else p for p in k): v for k, v in reversed(real(text).items())}

    old, new, _ = CASES["filter does not parse"]
    text = BASE.replace(old, new, 1)
    monkeypatch.setattr(spec_module, "key_lines", first_stage_only)
    with pytest.raises(InputError) as e:
        parse_spec(text, "c.toml")
    assert not str(e.value).startswith(f"c.toml:{_expected_line(text)}: ")


NO_RELAX = BASE.replace('[[stage]]\nkind = "relax"\nmax_steps = 5\n\n', "", 1)
RELAX_CASES = {  # (spec, old, new, pattern): a relax column where the campaign has no relax stage, and others
    "filter, crystals": (NO_RELAX, 'expr = "valid and density > 1"',
                         'expr = "valid and relax_converged and relax_energy_per_atom < -5"  # <-',
                         r"stage\[2\]\.expr: filter: unknown column 'relax_converged'.* at column 11 .*; "
                         r"relax_converged is a relax column; add a relax stage before score"),
    "rank, crystals": (NO_RELAX, 'columns = ["density", "n_atoms"]', 'columns = ["density", "relax_steps"]  # <-',
                       r"stage\[3\]\.columns: 'relax_steps' is not a column of the score table \(relax_steps is a "
                       r"relax column; add a relax stage before score\)"),
    "filter, proteins": (PROTEINS, 'expr = "helix > 0.2', 'expr = "relax_clashes_after == 0 and helix > 0.2',
                         r"stage\[3\]\.expr: filter: unknown column 'relax_clashes_after'.*; relax_clashes_after is "
                         r"a relax column; add a relax stage before score"),
    "another material's relax column": (BASE, 'expr = "valid and density > 1"',
                                        'expr = "relax_backbone_rmsd < 1"  # <-',
                                        r"unknown column 'relax_backbone_rmsd'"),
    "plots not a bool": (BASE, "top_k = 2", 'top_k = 2\nplots = "yes"  # <-',
                         r"stage\[5\]\.plots: must be true or false, got 'yes'"),
}


@pytest.mark.parametrize("case", sorted(RELAX_CASES))
def test_relax_columns_need_a_relax_stage(case: str) -> None:
    base, old, new, pattern = RELAX_CASES[case]
    assert old in base
    text = base.replace(old, new, 1)
    if "<-" not in new:
        text = text.replace('cluster >= 0"', 'cluster >= 0"  # <-', 1)
    with pytest.raises(InputError) as e:
        parse_spec(text, "c.toml")
    msg = str(e.value)
    assert msg.startswith(f"c.toml:{_expected_line(text)}: ") and re.search(pattern, msg), msg


def test_relax_columns_with_a_relax_stage_and_the_plots_switch() -> None:
    """The same filters parse once the campaign relaxes (crystals: BASE has a relax stage; proteins: one added),
    a relax column ranks, and ``plots`` defaults to true."""
    crystals = parse_spec(BASE.replace('expr = "valid and density > 1"',
                                       'expr = "relax_converged and relax_energy_per_atom < -5"').replace(
        'columns = ["density", "n_atoms"]', 'columns = ["density", "relax_fmax"]'), "c.toml")
    assert crystals.stage("rank").config.columns == ("density", "relax_fmax")
    assert crystals.stage("export").config.plots is True
    proteins = parse_spec(PROTEINS.replace('[[stage]]\nkind = "score"', '[[stage]]\nkind = "relax"\n\n'
                                           '[[stage]]\nkind = "score"', 1).replace(
        'expr = "helix > 0.2', 'expr = "relax_clashes_after == 0 and relax_backbone_rmsd < 1.0 and helix > 0.2')
        .replace("top_k = 3", "top_k = 3\nplots = false"), "p.toml")
    assert set(proteins.stage("filter").config.expr.columns) >= {"relax_clashes_after", "relax_backbone_rmsd"}
    assert proteins.stage("export").config.plots is False

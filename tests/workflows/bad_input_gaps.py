"""The bad-input cases of issue 25's crystal leftovers: an unknown element (``Xx``), a CIF cut between atom rows,
hull files that are not hulls, and a missing, empty or broken ``--reference`` without ``--dataset``. Each is
refused with exit 2 before anything is written; the cases join ``ERRORS`` of ``test_bad_input_crystals.py`` and
run with its corpus (extended by :func:`last_gaps`) and contract (``bad_input_corpus.py``)."""

from __future__ import annotations

from bad_input_corpus import RELAX0, SCORE, C, Case, Corpus, closed_scheduler

E = "{OUT}"


def last_gaps(c: Corpus) -> Corpus:
    """Inputs of issue 25's crystal leftovers: an unknown element, a CIF cut between atom rows that states its
    formula only as ``_chemical_formula_structural`` x Z, broken hull files, an empty reference CSV."""
    import gzip
    import re

    good = (c["good"] / "g1.cif").read_text()
    no_sum = re.sub(r"^_chemical_formula_sum.*\n", "", good, flags=re.MULTILINE)
    rows = no_sum.rstrip("\n").splitlines()
    unknown = "\n".join(rows[:-1] + [re.sub(r"^(\s*)\S+\s+\S+", r"\1Xx  Xx9", rows[-1])]) + "\n"
    unknown = re.sub(r"^_chemical_formula_structural.*\n", "", unknown, flags=re.MULTILINE)  # nothing to compare
    cut_rows = "\n".join(rows[:-2]) + "\n"  # whole atom rows lost: only the structural formula x Z tells
    files: dict[str, str | bytes] = {
        "unknown_element.cif": unknown, "cut_rows.cif": cut_rows, "hull_not_json.json": "{not json\n",
        "hull_number.json": "5\n", "hull_not_entries.json": '[{"a": 1}]\n', "hull_no_entries.json": "[]\n",
        "hull_nan.json": '[{"@module": "pymatgen.entries.computed_entries", "@class": "ComputedEntry", '
                         '"composition": {"Na": 1}, "energy": NaN, "correction": 0}]\n',
        "hull_bad_gzip.json.gz": b"\x1f\x8b garbage", "empty.csv": b""}
    for name, content in files.items():
        (c.root / name).write_bytes(content if isinstance(content, bytes) else content.encode())
        c.paths[name.replace(".", "_")] = str(c.root / name)
    (c.root / "hull_gz_text.json.gz").write_bytes(gzip.compress(b"not json"))
    c.paths["hull_gz_text_json_gz"] = str(c.root / "hull_gz_text.json.gz")
    for name, content in (("unknown_element", unknown), ("cut_rows", cut_rows)):
        d = c.root / f"mix_{name}"
        d.mkdir()
        (d / "g0.cif").write_text((c["good"] / "g0.cif").read_text())
        (d / f"bad_{name}.cif").write_text(content)
        c.paths[f"mix_{name}"] = str(d)
    c.paths["closed"] = closed_scheduler()
    return c


GAP_ERRORS: dict[str, Case] = {
    "score-unknown-element-file": C("score", "crystals", "{unknown_element_cif}", "--reference", "{ref}", *SCORE,
                                    "--out", E, text="species Xx0+ is not a chemical element"),
    "relax-unknown-element-file": C("relax", "crystals", "{unknown_element_cif}", *RELAX0, "--out", E,
                                    text="species Xx0+ is not a chemical element"),
    "relax-cut-between-rows": C("relax", "crystals", "{cut_rows_cif}", *RELAX0, "--out", E,
                                text="(truncated or incomplete file)"),
    "score-cut-between-rows": C("score", "crystals", "{cut_rows_cif}", "--reference", "{ref}", *SCORE, "--out", E,
                                text="(truncated or incomplete file)"),
    "score-hull-not-json": C("score", "crystals", "{good}", "--reference", "{ref}", *SCORE, "--hull",
                             "{hull_not_json_json}", "--out", E, text="not a readable JSON file of entries"),
    "score-hull-json-number": C("score", "crystals", "{good}", "--reference", "{ref}", *SCORE, "--hull",
                                "{hull_number_json}", "--out", E, text="not a list or dict"),
    "score-hull-json-not-entries": C("score", "crystals", "{good}", "--reference", "{ref}", *SCORE, "--hull",
                                     "{hull_not_entries_json}", "--out", E, text="item 0 is not a pymatgen"),
    "score-hull-json-no-entries": C("score", "crystals", "{good}", "--reference", "{ref}", *SCORE, "--hull",
                                    "{hull_no_entries_json}", "--out", E, text="no entries"),
    "score-hull-json-nan-energy": C("score", "crystals", "{good}", "--reference", "{ref}", *SCORE, "--hull",
                                    "{hull_nan_json}", "--out", E, text="energy nan"),
    "score-hull-bad-gzip": C("score", "crystals", "{good}", "--reference", "{ref}", *SCORE, "--hull",
                             "{hull_bad_gzip_json_gz}", "--out", E, text="not a readable JSON file of entries",
                             sub=True),
    "score-hull-gzip-not-json": C("score", "crystals", "{good}", "--reference", "{ref}", *SCORE, "--hull",
                                  "{hull_gz_text_json_gz}", "--out", E, text="not a readable JSON file of entries"),
    "score-dask-unreachable": C("score", "crystals", "{good}", "--reference", "{ref}", *SCORE, "--dask-scheduler",
                                "{closed}", "--out", E, text="no dask scheduler answers"),
    "score-dask-not-an-address": C("score", "crystals", "{good}", "--reference", "{ref}", *SCORE,
                                   "--dask-scheduler", "localhost", "--out", E, text="dask"),
    "score-reference-missing-no-dataset": C("score", "crystals", "{good}", "--reference", "{root}/nope.csv",
                                            *SCORE[2:], "--out", E, text="input not found"),
    "score-reference-empty-csv-no-dataset": C("score", "crystals", "{good}", "--reference", "{empty_csv}",
                                              *SCORE[2:], "--out", E, text="the file is empty"),
    "score-reference-broken-csv-no-dataset": C("score", "crystals", "{good}", "--reference", "{binary_csv}",
                                               *SCORE[2:], "--out", E, text="not a readable CSV"),
    "score-reference-no-cif-column-no-dataset": C("score", "crystals", "{good}", "--reference", "{nocif_csv}",
                                                  *SCORE[2:], "--out", E, text="no 'cif' column"),
}

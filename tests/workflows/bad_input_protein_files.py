"""The structure, FASTA, special-file, checkpoint and name cases of the protein bad-input corpus (issue 25).

:func:`protein_inputs` adds their inputs to the corpus of ``test_bad_input_proteins.py``: one small, real
backbone (45 residues of the embedded set) and every way to break it (NaN in PDB and mmCIF, a coordinate
overflowing the PDB columns, missing CA atoms, an unknown residue mid-chain, a file cut mid-line, empty and
binary files), every kind of non-regular entry (fifo, dangling link, symlink loop, a folder named ``x.pdb``),
bad FASTA files, a model file with a NaN weight, and a folder that mixes good files with each bad kind (for
the batch tests). :data:`FILE_ERRORS` are the refusals; they join ``ERRORS`` and run under the contract of
``bad_input_corpus.py``. Every refusal happens before any sampling, training or scoring.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from bad_input_corpus import C, Case, Corpus
from protein_files import set_x, special_entries, write

QUIET = ["--quiet", "--threads", "1"]
GEN = ["--per-length", "1", "--steps", "2", *QUIET]
SCORE = ["--mpnn-sequences", "1", "--reference", "none", "--no-cache", "--no-plots", *QUIET]
TRAIN = ["--max-steps", "1", "--val-every", "1", "--min-length", "3", *QUIET]
#: the bad structure files: name -> (file name, what the refusal / failed row says)
BAD_STRUCTURES = {
    "nan": ("nan.pdb", " 3: non-finite coordinates"),
    "nan_cif": ("nan_cif.cif", " 3: non-finite coordinates"),
    "overflow": ("overflow.pdb", "a coordinate of 1.23e+07 Angstrom"),
    "overflow_cif": ("overflow_cif.cif", "a coordinate of 1.23e+07 Angstrom"),
    "no_ca": ("no_ca.pdb", " 2, "),  # 'residues XXX 2, YYY 4 miss CA atoms' (the names are the chain's)
    "unknown_residue": ("unknown_residue.pdb", "residue XYZ 4: not a standard amino acid"),
    "cut_mid_line": ("cut_mid_line.pdb", "cannot read as PDB"),
    "cut_in_residue": ("cut_in_residue.pdb", "CA, C atoms; give a complete backbone"),
    "cut_cif": ("cut_cif.cif", "cannot read"),
    "empty": ("empty.pdb", "no atoms"),
    "binary": ("binary.pdb", "no atoms"),
}
#: the non-regular entries: name -> what the refusal / failed row says
SPECIAL = {"fifo": "a fifo (named pipe), not a regular file", "dangling": "a broken symbolic link",
           "loop": "a symbolic link loop", "dir": "a folder, not a file"}


def with_nan(source: Path, out: Path) -> Path:
    """A copy of the model file ``source`` with one weight set to NaN."""
    from pipeline.common.model_file import ModelFile, load_model_file, save_model_file

    ck = load_model_file(source)
    state = dict(ck.state_dict)
    name = min(state)
    bad = state[name].clone()
    bad.view(-1)[0] = float("nan")
    state[name] = bad
    return save_model_file(out, ModelFile(state, {k: v for k, v in ck.record.items() if k != "format_version"}))


def _cif_field(lines: list[str], residue: int, atom: str, column: str, value: str) -> list[str]:
    """mmCIF ``_atom_site`` rows with ``column`` of one atom replaced by ``value``."""
    names = [x.split(".", 1)[1].strip() for x in lines if x.startswith("_atom_site.")]
    col, seq, atom_id = names.index(column), names.index("label_seq_id"), names.index("label_atom_id")
    out = []
    for line in lines:
        f = line.split()
        if line.startswith("ATOM") and f[seq] == str(residue) and f[atom_id] == atom:
            f[col] = value
            line = " ".join(f)
        out.append(line)
    return out


def _bad_structures(good_pdb: Path, good_cif: Path) -> dict[str, str | bytes]:
    """The bytes of every file of :data:`BAD_STRUCTURES`, broken from the good PDB / mmCIF files."""
    pdb, cif = good_pdb.read_text().splitlines(), good_cif.read_text().splitlines()
    atoms = [i for i, x in enumerate(pdb) if x.startswith("ATOM")]
    cut = atoms[len(atoms) // 8 * 4]  # the first atom (N) of a residue in the middle (4 atoms per residue)
    cif_atoms = [i for i, x in enumerate(cif) if x.startswith("ATOM")]
    res4 = pdb[atoms[12]][17:20]  # the name of residue 4 (4 atoms per residue)
    return {
        "nan": "\n".join(set_x(pdb, 3, "CA", "     nan")) + "\n",
        "nan_cif": "\n".join(_cif_field(cif, 3, "CA", "Cartn_x", "nan")) + "\n",
        "overflow": "\n".join(set_x(pdb, 3, "CA", "12345678")) + "\n",  # the columns of x and y run together
        "overflow_cif": "\n".join(_cif_field(cif, 3, "CA", "Cartn_x", "12345678.0")) + "\n",
        "no_ca": "\n".join(x for x in pdb if not (x.startswith("ATOM") and x[12:16] == " CA "
                                                   and int(x[22:26]) in (2, 4))) + "\n",
        "unknown_residue": "\n".join(x[:17] + "XYZ" + x[20:] if x.startswith("ATOM") and int(x[22:26]) == 4
                                     and x[17:20] == res4 else x for x in pdb) + "\n",
        "cut_mid_line": "\n".join(pdb[:cut]) + "\n" + pdb[cut][:40],  # the file ends inside a coordinate
        "cut_in_residue": "\n".join(pdb[: cut + 1]) + "\n",  # whole lines lost: the last residue has only N
        "cut_cif": "\n".join(cif[: cif_atoms[len(cif_atoms) // 2]]) + "\nATOM N N . ",
        "empty": "",
        "binary": bytes(range(256)) * 8,
    }


def _write_all(folder: Path, files: dict[str, str | bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder


def protein_inputs(c: Corpus) -> Corpus:
    """Add the inputs of :data:`FILE_ERRORS` and of the batch tests to ``c`` (and watch their folders)."""
    from helpers import plain_protein_model
    from pipeline.proteins.network.checkpoint import SHIPPED_PROTEIN_MODEL
    from structures.data import load_proteins
    from structures.proteins.io import BackboneChain, write_structure

    root = c.root
    chains = [load_proteins()[i] for i in (3, 11)]
    good = [BackboneChain.from_coords(x.coords[:45], x.sequence[:45], name=x.name) for x in chains]
    structs = root / "structs"
    structs.mkdir()
    c.paths["structs"] = str(structs)
    write_structure(structs / "good.pdb", good[0])
    c.paths["plain_model"] = str(plain_protein_model(structs / "plain.safetensors"))  # no motif input
    write_structure(structs / "good.cif", good[0])
    bad = _bad_structures(structs / "good.pdb", structs / "good.cif")
    _write_all(structs, {BAD_STRUCTURES[k][0]: v for k, v in bad.items()})
    for key, (fname, _) in BAD_STRUCTURES.items():
        c.paths[f"s_{key}"] = str(structs / fname)
        shutil.copy(structs / fname, _write_all(root / "train_only" / key, {}) / fname)
        c.paths[f"train_only_{key}"] = str(root / "train_only" / key)
    (root / "train_only").joinpath("special").mkdir()
    special_entries(root / "train_only" / "special")
    c.paths["train_only_special"] = str(root / "train_only" / "special")
    c.paths["good_pdb"] = str(structs / "good.pdb")
    _write_all(root / "npz", {"garbage.npz": b"\x80\x04garbage", "empty.npz": b""})
    c.paths["garbage_npz"], c.paths["empty_npz"] = str(root / "npz" / "garbage.npz"), str(root / "npz" / "empty.npz")
    c.paths["clash"] = str(_write_all(root / "clash", {"a.pdb": (structs / "good.pdb").read_bytes(),
                                                         "a.cif": (structs / "good.cif").read_bytes()}))

    special = root / "special"
    special_entries(special)
    os.symlink("missing.fasta", special / "dangling.fasta")
    os.symlink("loop.fasta", special / "loop.fasta")
    os.mkfifo(special / "fifo.fasta")
    (special / "dir.fasta").mkdir()
    os.mkfifo(special / "fifo.safetensors")
    (special / "dir.safetensors").mkdir()
    c.paths["special"] = str(special)

    fasta = _write_all(root / "fasta", {
        "letters.fasta": ">a\nMKV123JJ\n", "x.fasta": ">a\nMKVXLAGG\n", "header_only.fasta": ">a\n",
        "binary.fasta": b">a\n\xff\xfe\x00\x81MKV\n", "dup.fasta": ">a\nMKVLA\n>a\nGGSAA\n",
        "long.fasta": ">long\n" + "MKVLAAGIVA" * 500 + "\n"})
    c.paths["fasta"] = str(fasta)
    c.paths["nan_model"] = str(with_nan(SHIPPED_PROTEIN_MODEL, root / "nan_protein.safetensors"))

    mix = _write_all(root / "mix", {"good_a.pdb": (structs / "good.pdb").read_bytes(),
                                    **{BAD_STRUCTURES[k][0]: v for k, v in bad.items()}})
    write_structure(mix / "good_b.pdb", good[1])
    write(mix / "mse.pdb", [x[:17] + "MSE" + x[20:] if x.startswith("ATOM") and int(x[22:26]) == 2 else x
                            for x in (structs / "good.pdb").read_text().splitlines()])
    shutil.copy(structs / "good.pdb", os.path.join(os.fsencode(mix), b"caf\xe9.pdb"))  # not UTF-8
    special_entries(mix)
    c.paths["mix"] = str(mix)
    c.inputs = (*c.inputs, "structs", "special", "fasta", "mix", "clash")
    return c


E = "{OUT}"
IF = ("generate", "proteins", "--mode", "inverse-folding", *GEN, "--structure-in")
FF = ("generate", "proteins", "--mode", "forward-folding", *GEN, "--sequence-in")
FILE_ERRORS: dict[str, Case] = {
    # ---- structures: one bad file given alone is refused by generate (inverse folding) and score; train reads
    #      folders, and a folder whose only file is bad leaves no chain to train on
    **{f"gen-structure-{k}": C(*IF, f"{{s_{k}}}", "--out", E, text=t) for k, (_, t) in BAD_STRUCTURES.items()},
    **{f"score-structure-{k}": C("score", "proteins", f"{{s_{k}}}", *SCORE, "--out", E, text=t)
       for k, (_, t) in BAD_STRUCTURES.items()},
    **{f"train-structure-{k}": C("train", "proteins", "--dataset", f"{{train_only_{k}}}", *TRAIN, "--out", E,
                                 text="no chain passed the filters")
       for k in ("nan", "nan_cif", "overflow", "no_ca", "unknown_residue", "binary")},
    "train-one-structure-file": C("train", "proteins", "--dataset", "{good_pdb}", *TRAIN, "--out", E,
                                  text="one structure file; put it"),
    "train-npz-garbage": C("train", "proteins", "--dataset", "{garbage_npz}", *TRAIN, "--out", E,
                           text="not an npz archive"),
    "train-npz-empty": C("train", "proteins", "--dataset", "{empty_npz}", *TRAIN, "--out", E,
                         text="not an npz archive"),
    # ---- special files given as the single input: refused without being opened (a fifo would block)
    **{f"score-special-{k}": C("score", "proteins", f"{{special}}/{k}.pdb", *SCORE, "--out", E,
                               text="no PDB/mmCIF files in this folder" if k == "dir" else t)
       for k, t in SPECIAL.items()},
    **{f"gen-special-{k}": C(*IF, f"{{special}}/{k}.pdb", "--out", E,
                             text="no PDB/mmCIF files in the folder" if k == "dir" else t) for k, t in SPECIAL.items()},
    "gen-special-folder": C(*IF, "{train_only_special}", "--out", E, text="a broken symbolic link"),
    **{f"train-special-{k}": C("train", "proteins", "--dataset", f"{{special}}/{k}.pdb", *TRAIN, "--out", E,
                               text="empty folder" if k == "dir" else t) for k, t in SPECIAL.items()},
    "train-special-folder": C("train", "proteins", "--dataset", "{train_only_special}", *TRAIN, "--out", E,
                              text="empty folder"),
    # ---- FASTA
    **{f"gen-fasta-{k}": C(*FF, f"{{special}}/{k}.fasta", "--out", E, text=t) for k, t in SPECIAL.items()},
    "gen-fasta-letters": C(*FF, "{fasta}/letters.fasta", "--out", E, text="'MKV123JJ'"),
    "gen-fasta-x": C(*FF, "{fasta}/x.fasta", "--out", E, text="'MKVXLAGG'"),
    "gen-fasta-header-only": C(*FF, "{fasta}/header_only.fasta", "--out", E, text="sequence 'a' must be"),
    "gen-fasta-not-utf8": C(*FF, "{fasta}/binary.fasta", "--out", E, text="cannot read the FASTA file"),
    "gen-fasta-duplicate-names": C(*FF, "{fasta}/dup.fasta", "--out", E, text="sample ids are not unique"),
    # ---- lengths: a 5,000-residue FASTA record is refused from the memory estimate, before sampling
    "gen-fasta-5000-residues": C(*FF, "{fasta}/long.fasta", "--max-memory-gb", "4", "--out", E,
                                 text="--max-memory-gb"),
    "gen-max-memory-negative": C("generate", "proteins", "--max-memory-gb", "-1", "--out", E, text="--max-memory-gb"),
    # ---- model files: NaN weights, pickles, special files; never unpickled
    "gen-model-fifo": C("generate", "proteins", "--model", "{special}/fifo.safetensors", "--lengths", "50", *GEN,
                        "--out", E, text="fifo.safetensors"),
    "gen-model-folder": C("generate", "proteins", "--model", "{special}/dir.safetensors", "--lengths", "50", *GEN,
                          "--out", E, text="dir.safetensors"),
    "train-init-nan": C("train", "proteins", "--init", "{nan_model}", *TRAIN, "--out", E, text="NaN or infinite"),
    "train-init-raw-pickle": C("train", "proteins", "--init", "{evil_ckpt}", *TRAIN, "--out", E, text="evil.ckpt"),
    "train-init-zip-pickle": C("train", "proteins", "--init", "{evil_zip_ckpt}", *TRAIN, "--out", E,
                               text="evil_zip.ckpt"),
    "info-checkpoint-nan": C("info", "--checkpoint", "{nan_model}", text="NaN or infinite"),
    "info-checkpoint-raw-pickle": C("info", "--checkpoint", "{evil_ckpt}", text="evil.ckpt"),
    "info-checkpoint-zip-pickle": C("info", "--checkpoint", "{evil_zip_ckpt}", text="evil_zip.ckpt"),
    "info-checkpoint-missing": C("info", "--checkpoint", "{root}/nope.safetensors", text="nope.safetensors"),
    "info-checkpoint-fifo": C("info", "--checkpoint", "{special}/fifo.safetensors", text="fifo.safetensors"),
    # ---- names: two files whose ids clash are refused before any work
    "score-ids-clash": C("score", "proteins", "{clash}", *SCORE, "--out", E, text="share the id 'a'"),
}

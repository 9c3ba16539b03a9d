"""Benchmark: forward time and peak memory of the `multiflow`-size protein network (random weights), ours
(pipeline.proteins.network.ProteinNetwork) vs MultiFlow's own FlowModel on the same weights, interleaved in
one process on the same machine.

Setting: `multiflow` config (21.79 M parameters), L = 100, 200, 300 residues, B = 1, 4, inference
forward under torch.no_grad, float32, self-conditioning inputs given. MultiFlow's code is read from a local copy
given by --multiflow-src (an export of github.com/jasonkyuyim/multiflow at 6278899970523bad29953047e7a42b32a41dc813;
never downloaded at run time, never committed); its imports of torch_scatter, mdtraj, Bio and dm-tree (unused
by FlowModel.forward) are replaced by inert stubs, as the reference fixture's driver did. Without it, only ours runs.

Peak memory: CUDA max_memory_allocated above the model's baseline; on CPU the peak resident-set growth sampled
every 2 ms during the call.

Last line JSON: time_ratio (sum of our median times / theirs; <= 1 means ours is at least as fast), max_abs_diff
(largest |ours - theirs| over pred_trans, pred_rotmats, pred_logits and all sizes), rows (per L, B: median
seconds, ratio, peak MB), parameters, device, settings.
Usage: python benchmarks/protein_network.py [--lengths 100,200,300] [--batch 1,4] [--repeats 3]
       [--device cpu|cuda] [--multiflow-src /tmp/multiflow_src] [--bf16]
"""

from __future__ import annotations

import argparse
import importlib.machinery
import json
import statistics
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402
import torch  # noqa: E402

from manifolds import so3  # noqa: E402
from pipeline.proteins.network import ProteinNetwork, ProteinNetworkInput  # noqa: E402

STUBBED = ("torch_scatter", "mdtraj", "Bio", "GPUtil", "wandb")


class _Stub(types.ModuleType):
    """Inert module: every attribute is another stub (MultiFlow's unused heavy imports)."""

    __path__: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Stub(f"{self.__name__}.{name}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _Stub("call")


class _StubFinder:
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name.split(".")[0] in STUBBED:
            return importlib.machinery.ModuleSpec(name, self)
        return None

    def create_module(self, spec: Any) -> types.ModuleType:
        return _Stub(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def _map_structure(fn: Callable, x: Any) -> Any:  # dm-tree's map_structure, enough for residue_constants
    if isinstance(x, (list, tuple)):
        return type(x)(_map_structure(fn, v) for v in x)
    if isinstance(x, dict):
        return {k: _map_structure(fn, v) for k, v in x.items()}
    return fn(x)


def import_flow_model(src: Path) -> type:
    """MultiFlow's FlowModel class from a local source tree (stubs for its unused imports)."""
    if not (src / "multiflow" / "models" / "flow_model.py").is_file():
        sys.exit(f"--multiflow-src {src}: no multiflow/models/flow_model.py there (export the repository first)")
    sys.meta_path.insert(0, _StubFinder())
    if "tree" not in sys.modules:
        tree = types.ModuleType("tree")
        tree.map_structure = _map_structure
        tree.__spec__ = importlib.machinery.ModuleSpec("tree", None)
        sys.modules["tree"] = tree
    sys.path.insert(0, str(src))
    from multiflow.models.flow_model import FlowModel  # type: ignore[import-not-found]

    return FlowModel


def make_input(b: int, n: int, device: torch.device, seed: int) -> ProteinNetworkInput:
    g = torch.Generator().manual_seed(seed)
    inp = ProteinNetworkInput(
        trans=torch.randn(b, n, 3, generator=g) * 10, rotmats=so3.uniform((b, n), rng=g, dtype=torch.float32),
        aatypes=torch.randint(0, 21, (b, n), generator=g), res_mask=torch.ones(b, n),
        so3_t=torch.rand(b, 1, generator=g), r3_t=torch.rand(b, 1, generator=g), cat_t=torch.rand(b, 1, generator=g),
        trans_sc=torch.randn(b, n, 3, generator=g) * 10, aatypes_sc=torch.randn(b, n, 21, generator=g),
        diffuse_mask=torch.ones(b, n), res_idx=torch.arange(n, dtype=torch.float32).expand(b, n).clone())
    return inp.to(device)


def as_multiflow_batch(inp: ProteinNetworkInput) -> dict[str, torch.Tensor]:
    return {"res_mask": inp.res_mask, "diffuse_mask": inp.diffuse_mask, "chain_idx": torch.ones_like(inp.res_mask),
            "res_idx": inp.res_idx, "so3_t": inp.so3_t, "r3_t": inp.r3_t, "cat_t": inp.cat_t, "trans_t": inp.trans,
            "rotmats_t": inp.rotmats, "aatypes_t": inp.aatypes, "trans_sc": inp.trans_sc, "aatypes_sc": inp.aatypes_sc}


class PeakMemory:
    """Peak memory growth (MB) during a block: CUDA allocator peak, or sampled RSS on CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.peak_mb = device, 0.0

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            self.proc, self.base, self.top, self.stop = psutil.Process(), psutil.Process().memory_info().rss, 0, False
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.stop:
            self.top = max(self.top, self.proc.memory_info().rss)
            time.sleep(0.002)

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak_mb = (torch.cuda.max_memory_allocated() - self.base) / 2**20
        else:
            self.stop = True
            self.thread.join()
            self.top = max(self.top, self.proc.memory_info().rss)
            self.peak_mb = max(0, self.top - self.base) / 2**20


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, float, Any]:
    with PeakMemory(device) as mem:
        t0 = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
    return dt, mem.peak_mb, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lengths", default="100,200,300", help="comma-separated residue counts")
    ap.add_argument("--batch", default="1,4", help="comma-separated batch sizes")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--config", default="multiflow", choices=["multiflow", "small"])
    ap.add_argument("--bf16", action="store_true", help="our network under bfloat16 autocast (GPU)")
    ap.add_argument("--multiflow-src", type=Path, default=None, help="local MultiFlow source tree (peer)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    lengths = [int(x) for x in args.lengths.split(",")]
    batches = [int(x) for x in args.batch.split(",")]

    torch.manual_seed(0)
    ours = ProteinNetwork(args.config).to(device).eval()
    with torch.no_grad():
        for p in ours.parameters():  # random weights everywhere (the init zeroes final layers)
            p.normal_(0.0, 0.5 / max(1, p.shape[-1]) ** 0.5)
    theirs = None
    if args.multiflow_src is not None:
        from omegaconf import OmegaConf

        flow_model = import_flow_model(args.multiflow_src.resolve())
        theirs = flow_model(OmegaConf.create(ours.cfg.to_dict())).to(device).eval()
        theirs.load_state_dict(ours.state_dict(), strict=True)

    rows, max_diff = [], 0.0
    for n in lengths:
        for b in batches:
            inp = make_input(b, n, device, seed=n * 10 + b)
            batch = as_multiflow_batch(inp)
            with torch.no_grad():
                run_ours = lambda: ours.predict(inp, bf16=args.bf16)  # noqa: E731
                run_theirs = lambda: theirs(batch)  # noqa: E731
                run_ours()  # warm-up
                if theirs is not None:
                    run_theirs()
                t_ours, t_theirs, m_ours, m_theirs = [], [], [], []
                for _ in range(args.repeats):  # interleaved
                    dt, mb, out = timed(run_ours, device)
                    t_ours.append(dt), m_ours.append(mb)
                    if theirs is not None:
                        dt, mb, ref = timed(run_theirs, device)
                        t_theirs.append(dt), m_theirs.append(mb)
                        for k in ("pred_trans", "pred_rotmats", "pred_logits"):
                            d = (getattr(out, k).float() - ref[k].float()).abs().max().item()
                            max_diff = max(max_diff, d)
            row = {"L": n, "B": b, "ours_s": round(statistics.median(t_ours), 4),
                   "ours_peak_mb": round(max(m_ours), 1)}
            if theirs is not None:
                row.update(theirs_s=round(statistics.median(t_theirs), 4), theirs_peak_mb=round(max(m_theirs), 1),
                           ratio=round(statistics.median(t_ours) / statistics.median(t_theirs), 3))
            rows.append(row)
            print(json.dumps(row), flush=True)
    total_ours = sum(r["ours_s"] for r in rows)
    total_theirs = sum(r["theirs_s"] for r in rows) if theirs is not None else None
    print(json.dumps({
        "time_ratio": round(total_ours / total_theirs, 3) if total_theirs else None,
        "max_abs_diff": max_diff if theirs is not None else None,
        "peer": "multiflow FlowModel @ 6278899" if theirs is not None else None,
        "parameters": ours.num_parameters(), "config": args.config, "device": str(device),
        "dtype": "bf16-autocast" if args.bf16 else "float32", "threads": torch.get_num_threads(),
        "settings": {"lengths": lengths, "batch": batches, "repeats": args.repeats}, "rows": rows,
    }))


if __name__ == "__main__":
    main()

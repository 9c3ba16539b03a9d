"""Benchmark: protein co-design sampling, ours batched vs MultiFlow's ``Interpolant.sample`` (flow) and multijump's
(SO(3) jumps), same random weights, interleaved repeats.

Setting: the ``multiflow``-size network (21.79 M parameters, random weights), L = 100, 100 time points,
co-design (purity sequence sampler, temperature 0.1, noise 20), float32. Ours samples ``--batch`` chains in one batch
(:func:`pipeline.proteins.sampler.sample_proteins`), with rotations by flow and by vMF jump. The peers run at
B = 1 (their only mode) from local copies of their code (``--multiflow-src``: an export of
github.com/jasonkyuyim/multiflow at 6278899970523bad29953047e7a42b32a41dc813, ``--multijump-src``: of
github.com/jasonkyuyim/multijump at 6368d6eb76af2f5e32d5f734cef24b7c3048a5e4; never downloaded, never committed),
each in its own subprocess (both packages are called ``multiflow``) with the unused imports stubbed as in
``benchmarks/protein_network.py``; the subprocess times only its ``sample`` call. Both sides run with glibc's
mmap of large blocks turned off (:func:`pipeline.common.allocator.keep_freed_memory`, what the ``genmatch`` command
does): at B > 1 the default re-maps the pair tensors on every call (B = 4 costs 1.4x B = 1 per sample).

Last line JSON: samples_per_s (ours, flow), samples_per_s_jump, speedup_flow / speedup_jump (our samples/s over
theirs; null without the peer), with ``--bf16`` also speedup_flow_bf16 / speedup_jump_bf16 (ours under bfloat16
autocast, ``--precision bf16``; the peers stay float32) and bf16_max_abs_diff (one call, bf16 vs fp32), per-run
seconds, settings.
Usage: python benchmarks/generate_proteins.py [--length 100] [--steps 100] [--batch 8] [--repeats 1]
       [--network multiflow|small] [--bf16] [--multiflow-src PATH] [--multijump-src PATH] [--device cpu|cuda] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from pipeline.common.allocator import keep_freed_memory  # noqa: E402
from pipeline.proteins.sampler import Conditioning, SamplerConfig, sample_proteins  # noqa: E402
from pipeline.proteins.network import ProteinNetwork  # noqa: E402
from pipeline.proteins.flow import ProteinFlowConfig, RotationConfig  # noqa: E402

INTERPOLANT = {
    "min_t": 0.01, "separate_t": False, "provide_kappa": False, "hierarchical_t": False, "codesign_separate_t": False,
    "codesign_forward_fold_prop": 0.0, "codesign_inverse_fold_prop": 0.0, "self_condition": True,
    "vmf": {"path_name": "vmf", "kappa_max": 200.0, "kappa_min": 0.01, "t_min": 0.01, "logive_approx": False,
            "upper_half": True, "kappa_alpha": 4.0},
    "rots": {"corrupt": True, "sample_schedule": "exp", "exp_rate": 10, "train_schedule": "linear",
             "num_jump_bins": 2056, "jump_weight": 1.0, "jump_temp": 1.0, "flow_weight": 0.0},
    "trans": {"corrupt": True, "batch_ot": True, "train_schedule": "linear", "sample_schedule": "linear",
              "sample_temp": 1.0, "vpsde_bmin": 0.1, "vpsde_bmax": 20.0, "potential": None},
    "aatypes": {"corrupt": True, "schedule": "linear", "schedule_exp_rate": -3, "temp": 0.1, "noise": 20.0,
                "do_purity": True, "interpolant_type": "masking", "train_extra_mask": 0.0},
    "sampling": {"num_timesteps": 100, "do_sde": False},
}


def peer_main(src: str, weights: str, config: str, length: int, steps: int, threads: int) -> None:
    """Subprocess: build their FlowModel with our weights and time one ``Interpolant.sample`` at B = 1."""
    from omegaconf import OmegaConf

    from benchmarks.protein_network import import_flow_model

    torch.set_num_threads(threads)
    keep_freed_memory()  # the same allocator setting as ours (module docstring)
    flow_model = import_flow_model(Path(src))
    from multiflow.data.interpolant import Interpolant  # type: ignore[import-not-found]

    doc = OmegaConf.load(config)
    model = flow_model(doc.model)
    model.load_state_dict(load_file(weights), strict=True)
    model.eval()
    interp = Interpolant(OmegaConf.create(INTERPOLANT))
    interp.set_device(torch.device("cpu"))
    torch.manual_seed(0)
    start = time.perf_counter()
    with torch.no_grad():
        interp.sample(1, length, model, num_timesteps=steps)
    print(json.dumps({"seconds": time.perf_counter() - start}))


def run_peer(src: Path, weights: Path, config: Path, args: argparse.Namespace) -> float:
    cmd = [sys.executable, __file__, "--_peer", str(src), "--_weights", str(weights), "--_config", str(config),
           "--length", str(args.length), "--steps", str(args.steps), "--threads", str(args.threads)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if res.returncode != 0:
        sys.exit(f"peer {src} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])["seconds"]


def run_ours(net: ProteinNetwork, args: argparse.Namespace, rotations: str, seed: int, precision: str = "fp32") -> float:
    cond = Conditioning(torch.ones(args.batch, args.length, dtype=torch.bool, device=net.device))
    config = SamplerConfig(steps=args.steps, flow=ProteinFlowConfig(rotations=RotationConfig(kind=rotations)),  # type: ignore[arg-type]
                           precision=precision)
    rng = torch.Generator(device=net.device).manual_seed(seed)
    if net.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    sample_proteins(net, cond, config, rng)
    if net.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def bf16_deviation(args: argparse.Namespace) -> dict[str, float] | None:
    """Largest |bf16 - fp32| of one network call of the shipped trained model (random weights say nothing: their
    zero-initialised output layers give the input frames back) on a random input of the benchmark's size
    (translations in Angstrom, rotation matrix entries, logits): what --precision bf16 changes per call."""
    from benchmarks.protein_network import make_input
    from pipeline.proteins.network.checkpoint import default_protein_checkpoint, load_protein_network

    path = default_protein_checkpoint()
    if path is None:
        return None
    net = load_protein_network(path, device=args.device)
    inp = make_input(args.batch, args.length, net.device, seed=1)
    with torch.no_grad():
        a, b = net.predict(inp), net.predict(inp, bf16=True)
    return {k: float((getattr(a, k) - getattr(b, k)).abs().max()) for k in ("pred_trans", "pred_rotmats", "pred_logits")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--length", type=int, default=100)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch", type=int, default=8, help="our batch size (the peers run B = 1)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--network", default="multiflow", choices=["multiflow", "small"])
    p.add_argument("--multiflow-src", type=Path, default=None)
    p.add_argument("--multijump-src", type=Path, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--bf16", action="store_true", help="also time ours with bfloat16 autocast (--precision bf16)")
    p.add_argument("--_peer", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_weights", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_config", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._peer:
        peer_main(args._peer, args._weights, args._config, args.length, args.steps, args.threads)
        return
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    torch.manual_seed(0)
    net = ProteinNetwork.build(args.network, device=args.device).eval()
    times: dict[str, list[float]] = {"ours_flow": [], "ours_jump": [], "multiflow": [], "multijump": [],
                                     "ours_flow_bf16": [], "ours_jump_bf16": []}
    with tempfile.TemporaryDirectory() as tmp:
        weights, config = Path(tmp) / "w.safetensors", Path(tmp) / "config.yaml"
        save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(weights))
        config.write_text(json.dumps({"model": {**net.cfg.to_dict(), "symmetric": False}}))
        for r in range(args.repeats):  # interleaved
            times["ours_flow"].append(run_ours(net, args, "flow", r))
            if args.bf16:
                times["ours_flow_bf16"].append(run_ours(net, args, "flow", r, "bf16"))
            if args.multiflow_src:
                times["multiflow"].append(run_peer(args.multiflow_src, weights, config, args))
            times["ours_jump"].append(run_ours(net, args, "jump", r))
            if args.bf16:
                times["ours_jump_bf16"].append(run_ours(net, args, "jump", r, "bf16"))
            if args.multijump_src:
                times["multijump"].append(run_peer(args.multijump_src, weights, config, args))
    med = {k: statistics.median(v) if v else None for k, v in times.items()}
    ours_flow = args.batch / med["ours_flow"]
    ours_jump = args.batch / med["ours_jump"]
    out = {
        "samples_per_s": ours_flow, "samples_per_s_jump": ours_jump,
        "speedup_flow": ours_flow * med["multiflow"] if med["multiflow"] else None,
        "speedup_jump": ours_jump * med["multijump"] if med["multijump"] else None,
        "speedup_flow_bf16": (args.batch / med["ours_flow_bf16"] * med["multiflow"]
                              if med["multiflow"] and med["ours_flow_bf16"] else None),
        "speedup_jump_bf16": (args.batch / med["ours_jump_bf16"] * med["multijump"]
                              if med["multijump"] and med["ours_jump_bf16"] else None),
        "bf16_max_abs_diff": bf16_deviation(args) if args.bf16 else None,
        "seconds": med, "parameters": net.num_parameters(),
        "settings": {"length": args.length, "steps": args.steps, "batch": args.batch, "repeats": args.repeats,
                     "network": args.network, "device": args.device, "threads": args.threads, "mode": "codesign"},
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()

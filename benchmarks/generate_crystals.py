"""Benchmark: crystal sampling with the `paper`-size permutation-invariant DiT (random weights), our sampler
(pipeline.crystals.generate.sample_tokens: KO Algorithm 1 steps, typed-token logits, fixed padding) vs Meta's
flow_matching MixtureDiscreteEulerSolver driving the same network, interleaved in one process, same machine.

Setting: `paper` DiT (hidden 256, 16 blocks, 16 heads, ~25 M parameters), batch 256, 250 steps,
mask source, cubic scheduler (flow_matching has no kinetic-optimal scheduler; the per-step work is the same),
temperature 0.7, Perov-5 atom counts (5 atoms) unless --atoms says otherwise (then counts 1..atoms are drawn and
flow_matching's model wrapper pins padded slots to PAD). Both samplers call the network once per step and end
with a posterior draw. On a CPU the full setting takes long; --steps/--batch reduce it (reported in the JSON).

Last line JSON: time_ratio (our median time / theirs; <= 1 means ours is at least as fast), samples_per_s (ours),
theirs_samples_per_s, valid (both return well-typed, fully unmasked tokens), settings, device.
Usage: python benchmarks/generate_crystals.py [--steps 250] [--batch 256] [--repeats 3] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pipeline.crystals.flow import CrystalModel, CrystalPosterior, token_mask_of  # noqa: E402
from pipeline.crystals.generate import CrystalGenerateConfig, sample_tokens  # noqa: E402
from pipeline.crystals.network import CONFIGS, CrystalDiT  # noqa: E402
from structures.crystals.tokens import MASK, PAD, TOKEN_KIND, VOCAB_SIZE, masked_template, position_kinds  # noqa: E402

TEMPERATURE = 0.7


def run_ours(model: CrystalModel, counts: np.ndarray, steps: int, seed: int) -> torch.Tensor:
    cfg = CrystalGenerateConfig(steps=steps, temperature=TEMPERATURE, scheduler="cubic")
    with torch.inference_mode():
        return sample_tokens(model, counts, cfg, torch.Generator(device=_device(model)).manual_seed(seed))


def run_theirs(model: CrystalModel, counts: np.ndarray, steps: int, seed: int) -> torch.Tensor:
    from flow_matching.path import MixtureDiscreteProbPath
    from flow_matching.path.scheduler import PolynomialConvexScheduler
    from flow_matching.solver import MixtureDiscreteEulerSolver
    from flow_matching.utils import ModelWrapper

    device = _device(model)
    tmpl = masked_template(counts, int(counts.max())).to_torch(device)
    pad = ~tmpl.token_mask  # [B, L]

    class Probs(ModelWrapper):
        def forward(self, x: torch.Tensor, t: torch.Tensor, **extras) -> torch.Tensor:
            p = torch.softmax(self.model(x, t, tmpl.atom_mask).float() / TEMPERATURE, -1)  # [B, L, V]
            return torch.where(pad[..., None], torch.nn.functional.one_hot(x, VOCAB_SIZE).float(), p)

    solver = MixtureDiscreteEulerSolver(Probs(model.posterior), MixtureDiscreteProbPath(PolynomialConvexScheduler(3.0)),
                                        VOCAB_SIZE)
    torch.manual_seed(seed)
    with torch.inference_mode():
        return solver.sample(tmpl.tokens, step_size=None,
                             time_grid=torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float32, device=device))


def _device(model: CrystalModel) -> torch.device:
    return next(model.posterior.parameters()).device


def well_typed(x: torch.Tensor, counts: np.ndarray) -> bool:
    atom_mask = torch.arange(int(counts.max()))[None] < torch.as_tensor(counts)[:, None]
    real = token_mask_of(atom_mask)
    kinds = torch.as_tensor(TOKEN_KIND)[x.cpu()]
    expected = torch.as_tensor(position_kinds(int(counts.max()))).expand_as(kinds)
    return bool((kinds[real] == expected[real]).all() and (x.cpu()[~real] == PAD).all() and not (x == MASK).any())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--atoms", type=int, default=0, help="0: Perov-5 (5 atoms each); N: counts drawn from 1..N")
    ap.add_argument("--network", default="paper", choices=sorted(CONFIGS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = CrystalDiT(CONFIGS[args.network]).to(args.device).eval()
    with torch.no_grad():  # random weights everywhere (zero-initialised adaLN too) so every path carries signal
        for p in net.parameters():
            p.normal_(0, 0.02)
    model = CrystalModel(posterior=CrystalPosterior(net).eval(), scheduler="cubic",
                         atom_count_distribution=np.array([]), max_atoms=max(args.atoms, 5), record={})
    counts = np.full(args.batch, 5) if args.atoms == 0 else \
        np.random.default_rng(0).integers(1, args.atoms + 1, size=args.batch)
    times: dict[str, list[float]] = {"ours": [], "theirs": []}
    ok = True
    runners = {"ours": run_ours, "theirs": run_theirs}
    for r in range(args.repeats):
        for name in (["ours", "theirs"] if r % 2 == 0 else ["theirs", "ours"]):
            if args.device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            x = runners[name](model, counts, args.steps, 1000 + r)
            if args.device == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t0)
            ok &= well_typed(x, counts)
            print(f"repeat {r} {name:6s} {times[name][-1]:.2f} s", flush=True)
    ours, theirs = statistics.median(times["ours"]), statistics.median(times["theirs"])
    print(f"ours {ours:.2f} s, flow_matching {theirs:.2f} s (medians of {args.repeats}); ratio {ours / theirs:.3f}")
    print(json.dumps({"benchmark": "generate_crystals", "time_ratio": round(ours / theirs, 4),
                      "samples_per_s": round(args.batch / ours, 3),
                      "theirs_samples_per_s": round(args.batch / theirs, 3),
                      "valid": ok, "ours_s": round(ours, 3), "theirs_s": round(theirs, 3), "repeats": args.repeats,
                      "network": args.network, "parameters": net.num_parameters(), "batch": args.batch,
                      "steps": args.steps, "atoms": args.atoms or 5, "device": args.device,
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()

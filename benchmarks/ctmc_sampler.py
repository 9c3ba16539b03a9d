"""Benchmark: CTMC sampling with a posterior network, ours (manifolds.discrete.sample) vs Meta's flow_matching
1.0.10 MixtureDiscreteEulerSolver (a test-only dependency, CC-BY-NC), CPU, same machine, same process.

Setting: a small transformer denoiser with random weights (2 encoder layers, width 128, 4 heads),
vocabulary 878 (the crystal vocabulary size; the last token is the mask and is never predicted), 26 positions,
batch 256, 100 steps on [0, 1], mask source, polynomial (cubic) scheduler. Both samplers draw x1 from the same
network's posterior at the same 100 times and both end with a posterior draw at the last step. Runs are
interleaved (ours, theirs, theirs, ours, ...) with the same seeds; the median wall time of each is compared.

Prints a human summary, then one JSON object as its last line: time_ratio (our median / their median; <= 1.0
means ours is at least as fast), valid (both return [256, 26] tokens, all in the vocabulary and none masked),
token_tv (total variation between the two samplers' token histograms: same law, so small), timings.
With --corrector W > 0 both samplers add the probability-preserving corrector (ours: KO eq. 35 with weight W;
theirs: div_free=W with the mask source, which is the same velocity on this path).
Usage: python benchmarks/ctmc_sampler.py [--repeats 3] [--threads 0 (torch default)] [--corrector 0.0]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from manifolds.discrete import DiscreteGenerator, MixturePath, PolynomialScheduler, mask_source, sample  # noqa: E402

VOCAB, LENGTH, BATCH, STEPS = 878, 26, 256, 100
MASK = VOCAB - 1


class Denoiser(nn.Module):
    """Token + position embeddings, sinusoidal time embedding, a TransformerEncoder, a linear head -> logits."""

    def __init__(self, vocab: int = VOCAB, length: int = LENGTH, width: int = 128, layers: int = 2,
                 heads: int = 4) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, width)
        self.pos = nn.Parameter(0.02 * torch.randn(length, width))
        self.time = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.0, batch_first=True)
        self.trunk = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(width, vocab)
        self.width = width

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        half = self.width // 2
        freqs = torch.exp(-math.log(1000.0) * torch.arange(half, dtype=torch.float32) / half)
        ang = t.float()[:, None] * 1000.0 * freqs[None]  # [B, W/2]
        temb = self.time(torch.cat([ang.sin(), ang.cos()], -1))  # [B, W]
        h = self.tok(x) + self.pos + temb[:, None]
        logits = self.head(self.trunk(h))  # [B, L, V]
        logits[..., MASK] = -math.inf  # the mask token is never data
        return logits


def run_ours(net: Denoiser, seed: int, corrector: float = 0.0) -> torch.Tensor:
    gen = DiscreteGenerator(MixturePath(mask_source(VOCAB, MASK), PolynomialScheduler(3.0)), corrector=corrector)
    torch.manual_seed(seed)
    x0 = torch.full((BATCH, LENGTH), MASK)
    with torch.inference_mode():
        return sample(gen, net, x0, STEPS)


def run_theirs(net: Denoiser, seed: int, corrector: float = 0.0) -> torch.Tensor:
    from flow_matching.path import MixtureDiscreteProbPath
    from flow_matching.path.scheduler import PolynomialConvexScheduler
    from flow_matching.solver import MixtureDiscreteEulerSolver
    from flow_matching.utils import ModelWrapper

    class Probs(ModelWrapper):
        def forward(self, x: torch.Tensor, t: torch.Tensor, **extras) -> torch.Tensor:
            return torch.softmax(self.model(x, t), -1)

    solver = MixtureDiscreteEulerSolver(Probs(net), MixtureDiscreteProbPath(PolynomialConvexScheduler(n=3.0)), VOCAB,
                                        source_distribution_p=mask_source(VOCAB, MASK) if corrector else None)
    torch.manual_seed(seed)
    x0 = torch.full((BATCH, LENGTH), MASK)
    with torch.inference_mode():
        return solver.sample(x0, step_size=1.0 / STEPS, div_free=corrector)


def valid(x: torch.Tensor) -> bool:
    return x.shape == (BATCH, LENGTH) and bool(((x >= 0) & (x < VOCAB) & (x != MASK)).all())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--corrector", type=float, default=0.0, help="corrector weight (0: the plain sampler)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = Denoiser().eval()
    times: dict[str, list[float]] = {"ours": [], "theirs": []}
    outs: dict[str, list[torch.Tensor]] = {"ours": [], "theirs": []}
    runners = {"ours": run_ours, "theirs": run_theirs}
    for r in range(args.repeats):
        order = ["ours", "theirs"] if r % 2 == 0 else ["theirs", "ours"]
        for name in order:
            t0 = time.perf_counter()
            outs[name].append(runners[name](net, seed=1000 + r, corrector=args.corrector))
            times[name].append(time.perf_counter() - t0)
            print(f"repeat {r} {name:6s} {times[name][-1]:.2f} s", flush=True)
    ours, theirs = statistics.median(times["ours"]), statistics.median(times["theirs"])
    hist = {k: torch.bincount(torch.cat(v).reshape(-1), minlength=VOCAB).double() for k, v in outs.items()}
    token_tv = 0.5 * float((hist["ours"] / hist["ours"].sum() - hist["theirs"] / hist["theirs"].sum()).abs().sum())
    ok = all(valid(x) for v in outs.values() for x in v)
    print(f"ours {ours:.2f} s, flow_matching {theirs:.2f} s (medians of {args.repeats}); ratio {ours / theirs:.3f}")
    print(json.dumps({"benchmark": "ctmc_sampler", "time_ratio": round(ours / theirs, 4), "valid": ok,
                      "ours_s": round(ours, 3), "theirs_s": round(theirs, 3), "token_tv": round(token_tv, 4),
                      "corrector": args.corrector, "repeats": args.repeats, "threads": torch.get_num_threads(),
                      "vocab": VOCAB, "length": LENGTH, "batch": BATCH, "steps": STEPS}))


if __name__ == "__main__":
    main()

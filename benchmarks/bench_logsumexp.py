"""Benchmark: companion::logsumexp kernel vs torch.logsumexp vs the pure-PyTorch reference.

    python -m benchmarks.bench_logsumexp --out results/bench [--quick] [--device cpu|cuda]

Times the forward over [N, V] logits at LM vocabulary sizes (Llama 32000, GPT-2 50257) with
torch.utils.benchmark (median of blocked runs, CUDA synchronized), checks the kernel against the reference
first, and writes `<out>/logsumexp.json` (times, effective bandwidth, speedups = baseline time / kernel
time) and `<out>/logsumexp.png|pdf`. Cost: about a minute on 2 CPU cores (`--quick`: a few seconds).
"""

from __future__ import annotations

import argparse
import pathlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils import benchmark

from common.atomic import atomic_write_json
from common.env_info import environment
from common.ops import logsumexp, logsumexp_reference
from common.plotting import new_figure, save

# (N, V, dtype): a pretraining-size batch of Llama-vocabulary rows and a GPT-2-vocabulary batch.
CASES = [(4096, 32000, torch.float32), (512, 50257, torch.float32), (4096, 32000, torch.bfloat16)]
QUICK_CASES = [(256, 32000, torch.float32), (64, 50257, torch.bfloat16)]

IMPLEMENTATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "kernel": logsumexp,
    "torch.logsumexp": lambda x: torch.logsumexp(x, dim=-1),
    "reference": logsumexp_reference,
}
BASELINES = ("torch.logsumexp", "reference")


def _time(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, min_run_time: float) -> float:
    """Median seconds per call."""
    timer = benchmark.Timer(stmt="fn(x)", globals={"fn": fn, "x": x}, num_threads=torch.get_num_threads())
    return float(timer.blocked_autorange(min_run_time=min_run_time).median)


def bench_case(N: int, V: int, dtype: torch.dtype, device: str, min_run_time: float) -> dict[str, Any]:
    """Times every implementation on one [N, V] input; one setup shared by all of them."""
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(N, V, generator=gen) * 3).to(device=device, dtype=dtype)  # (N, V)
    max_diff = (logsumexp(x).double() - logsumexp_reference(x).double()).abs().max().item()
    seconds = {name: _time(fn, x, min_run_time) for name, fn in IMPLEMENTATIONS.items()}
    return {
        "shape": [N, V],
        "dtype": str(dtype).removeprefix("torch."),
        "seconds": seconds,
        "kernel_gbytes_per_s": x.numel() * x.element_size() / seconds["kernel"] / 1e9,
        "speedup": {name: seconds[name] / seconds["kernel"] for name in BASELINES},
        "max_abs_diff_vs_reference": max_diff,
    }


def plot(data: dict[str, Any], out_dir: pathlib.Path) -> list[str]:
    """Left: ms per call for each implementation and case; right: kernel speedup over each baseline."""
    rows = data["rows"]
    labels = [f"{r['shape'][0]}x{r['shape'][1]}\n{r['dtype']}" for r in rows]
    pos = np.arange(len(rows))
    fig, (ax_time, ax_speed) = new_figure(ncols=2, width=4.2)
    width = 0.8 / len(IMPLEMENTATIONS)
    for i, name in enumerate(IMPLEMENTATIONS):
        ax_time.bar(pos + (i - 1) * width, [r["seconds"][name] * 1e3 for r in rows], width, label=name)
    ax_time.set_xticks(pos, labels)
    ax_time.set_ylim(0, 1.45 * max(max(r["seconds"].values()) for r in rows) * 1e3)  # room for the legend
    ax_time.set_ylabel("ms per call (median)")
    ax_time.set_title(f"log-sum-exp forward, {data['device']} ({data['threads']} threads)")
    ax_time.legend(loc="upper right", ncols=3, fontsize=7)
    width = 0.8 / len(BASELINES)
    for i, name in enumerate(BASELINES):
        ax_speed.bar(pos + (i - 0.5) * width, [r["speedup"][name] for r in rows], width, label=f"vs {name}")
    ax_speed.axhline(1.0, color="black", linewidth=0.8)
    ax_speed.set_ylim(0, 1.3 * max(max(r["speedup"].values()) for r in rows))
    ax_speed.set_xticks(pos, labels)
    ax_speed.set_ylabel("baseline time / kernel time")
    ax_speed.set_title("kernel speedup")
    ax_speed.legend(loc="upper right", ncols=2, fontsize=7)
    return save(fig, out_dir, "logsumexp")


def main(out_dir: pathlib.Path, quick: bool = False, device: str = "cpu") -> dict[str, Any]:
    """Run the benchmark, write `<out_dir>/logsumexp.json` and the plot, and return the JSON data."""
    out_dir = pathlib.Path(out_dir)
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' requested but torch.cuda.is_available() is False")
    min_run_time = 0.2 if quick else 1.0
    cases = QUICK_CASES if quick else CASES
    rows = [bench_case(N, V, dtype, device, min_run_time) for N, V, dtype in cases]
    data = {
        "op": "logsumexp",
        "device": device,
        "threads": torch.get_num_threads(),
        "quick": quick,
        "implementations": list(IMPLEMENTATIONS),
        "rows": rows,
        "environment": environment(device),
    }
    atomic_write_json(out_dir / "logsumexp.json", data)
    data["files"] = ["logsumexp.json", *plot(data, out_dir)]
    return data


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/bench"), help="output dir")
    parser.add_argument("--quick", action="store_true", help="small shapes, short timing (a few seconds)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args()
    result = main(args.out, quick=args.quick, device=args.device)
    for row in result["rows"]:
        speedups = ", ".join(f"{row['speedup'][b]:.2f}x vs {b}" for b in BASELINES)
        print(f"{row['shape']} {row['dtype']}: kernel {row['seconds']['kernel'] * 1e3:.2f} ms ({speedups})")
    print(f"wrote {', '.join(str(args.out / f) for f in result['files'])}")

"""Benchmark: fused linear DPO loss (companion::fused_linear_dpo) vs eager, compiled and chunked PyTorch.

    python -m benchmarks.bench_dpo --out results/bench [--quick] [--device cpu|cuda]
    companion bench dpo

Forward + backward of the mean DPO loss straight from hidden states (B=4 pairs, T=256, H=256, float32, V
in {4096, 16384, 65536}), for four providers, each in its own process so that its peak memory is clean:
  - eager:    fused_linear_dpo_loss_reference, the full [2B, T, V] logits as TRL's DPOTrainer computes them;
  - compiled: torch.compile of the same reference;
  - chunked:  plain PyTorch in the style of Liger-Kernel's fused linear preference loss, one pair at a time,
              with its gradients computed in the forward by torch.func.grad_and_value;
  - ours:     common.ops.fused_linear_dpo_loss (the C++ / CUDA kernel).
Memory is the peak resident memory (CPU; peak allocated on CUDA) above what the process held once its
inputs existed, measured on the first call after a warm-up call (so that compilation does not count), with
glibc's malloc set to return large blocks to the system (MALLOC_MMAP_THRESHOLD_). Time is the median
forward+backward over several calls. Throughput counts the 6 N V H flops of the three GEMMs of a
materialized implementation (N = 2 B T rows) for every provider, beside the machine's own float32 matmul
rate on the [N, H] x [H, V] product measured in the same run. Writes `<out>/dpo.json` and `dpo.png|pdf`.
Cost: about 6 minutes on 2 CPU cores (`--quick`: B=2, T=128, H=128, V=8192 only, about a minute;
compiling the reference takes most of it). The targets are stated for the full setting.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time
from typing import Any

import torch

from common.memory import peak_rss_bytes, reset_peak_rss, rss_bytes

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROVIDERS = ("eager", "compiled", "chunked", "ours")
BASELINES = ("eager", "compiled", "chunked")
SETTING = dict(B=4, T=256, H=256, V=16384)
SWEEP_V = (4096, 16384, 65536)
QUICK = dict(B=2, T=128, H=128, sweep=(8192,))
BETA = 0.1


# ----------------------------------------------------------------------------------------- providers


def chunked_dpo_loss(hidden_chosen, hidden_rejected, weight, labels_chosen, labels_rejected, ref_c, ref_r):
    """Liger-style baseline: per pair, logits [2, T, V] -> log_softmax -> gather -> DPO loss, and its
    gradients by torch.func.grad_and_value inside the forward; grad_weight accumulated over pairs.
    Returns (loss, grad_hidden_chosen, grad_hidden_rejected, grad_weight)."""
    B = hidden_chosen.shape[0]

    def pair_loss(hc, hr, w, lc, lr, rc, rr):
        logits = torch.cat([hc, hr]) @ w.T  # (2, T, V)
        labels = torch.cat([lc, lr])  # (2, T)
        mask = labels != -100
        logp = torch.log_softmax(logits.float(), -1).gather(-1, torch.where(mask, labels, 0).unsqueeze(-1))
        seq = (logp.squeeze(-1) * mask).sum(-1)  # (2,)
        h = (seq[0] - seq[1]) - (rc - rr)
        return -torch.nn.functional.logsigmoid(BETA * h).sum() / B

    grad_fn = torch.func.grad_and_value(pair_loss, argnums=(0, 1, 2))
    grad_w = torch.zeros_like(weight)
    grad_hc, grad_hr, loss = [], [], 0.0
    for b in range(B):
        sl = slice(b, b + 1)
        (g_hc, g_hr, g_w), value = grad_fn(
            hidden_chosen[sl],
            hidden_rejected[sl],
            weight,
            labels_chosen[sl],
            labels_rejected[sl],
            ref_c[b],
            ref_r[b],
        )
        grad_w += g_w
        grad_hc.append(g_hc)
        grad_hr.append(g_hr)
        loss = loss + value
    return loss, torch.cat(grad_hc), torch.cat(grad_hr), grad_w


def _inputs(B, T, H, V, device, seed=0):
    gen = torch.Generator().manual_seed(seed)
    hc = torch.randn(B, T, H, generator=gen).to(device).requires_grad_(True)  # (B, T, H)
    hr = torch.randn(B, T, H, generator=gen).to(device).requires_grad_(True)  # (B, T, H)
    w = (torch.randn(V, H, generator=gen) / H**0.5).to(device).requires_grad_(True)  # (V, H)
    lc = torch.randint(0, V, (B, T), generator=gen).to(device)  # every label counts: no rows to skip
    lr = torch.randint(0, V, (B, T), generator=gen).to(device)
    rc, rr = (
        (-torch.rand(B, generator=gen) * T * 5).to(device),
        (-torch.rand(B, generator=gen) * T * 5).to(device),
    )
    return hc, hr, w, lc, lr, rc, rr


def _step_fn(provider: str):
    """A function (inputs) -> loss that runs forward + backward, leaving .grad on the three leaves."""
    from common.ops import fused_linear_dpo_loss, fused_linear_dpo_loss_reference

    if provider == "chunked":

        def step(hc, hr, w, lc, lr, rc, rr):
            loss, g_hc, g_hr, g_w = chunked_dpo_loss(hc.detach(), hr.detach(), w.detach(), lc, lr, rc, rr)
            hc.grad, hr.grad, w.grad = g_hc, g_hr, g_w
            return loss.detach()

        return step
    fn = {"eager": fused_linear_dpo_loss_reference, "ours": fused_linear_dpo_loss}.get(provider)
    if provider == "compiled":
        fn = torch.compile(fused_linear_dpo_loss_reference, fullgraph=True)

    def step(hc, hr, w, lc, lr, rc, rr):
        loss, _, _ = fn(hc, hr, w, lc, lr, rc, rr, beta=BETA)
        loss.backward()
        return loss.detach()

    return step


def worker(provider: str, B: int, T: int, H: int, V: int, runs: int, device: str) -> dict[str, Any]:
    """Runs in its own process: memory of one call after a warm-up, then the median time of `runs` calls."""
    inputs = _inputs(B, T, H, V, device)
    leaves = inputs[:3]
    step = _step_fn(provider)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def clear():
        for t in leaves:
            t.grad = None

    loss = step(*inputs)  # warm-up (compiles, fills caches)
    clear()
    sync()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = rss_bytes()
        reset_peak_rss()
    loss = step(*inputs)
    sync()
    peak = (torch.cuda.max_memory_allocated() if device == "cuda" else peak_rss_bytes()) - base
    seconds = []
    for _ in range(runs):
        clear()
        sync()
        start = time.perf_counter()
        step(*inputs)
        sync()
        seconds.append(time.perf_counter() - start)
    return {"provider": provider, "V": V, "peak_bytes": peak, "seconds": statistics.median(seconds),
            "all_seconds": seconds, "loss": float(loss)}  # fmt: skip


def matmul_worker(B: int, T: int, H: int, V: int, runs: int, device: str) -> dict[str, Any]:
    """The machine's float32 GEMM rate on the [N, H] x [H, V] product of the benchmark (N = 2 B T)."""
    N = 2 * B * T
    a, b = torch.randn(N, H, device=device), torch.randn(H, V, device=device)
    out = torch.empty(N, V, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    torch.mm(a, b, out=out)
    seconds = []
    for _ in range(max(runs, 3)):
        sync()
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        sync()
        seconds.append(time.perf_counter() - start)
    return {"provider": "matmul", "V": V, "gflops": 2 * N * H * V / min(seconds) / 1e9}


def _spawn(args: list[str]) -> dict[str, Any]:
    env = dict(
        os.environ, PYTHONPATH=str(ROOT), MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072"
    )
    env.pop("COMPANION_REFERENCE_OPS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_dpo", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker {args} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------ driver


def plot(data: dict[str, Any], out_dir: pathlib.Path) -> list[str]:
    """Left: peak memory above the inputs vs V; middle: seconds per forward+backward; right: GFLOP/s."""
    from common.plotting import new_figure, save

    fig, (ax_mem, ax_time, ax_rate) = new_figure(ncols=3, width=3.4)
    sweep = data["sweep"]
    Vs = [row["V"] for row in sweep]
    for name in PROVIDERS:
        ax_mem.plot(Vs, [row["peak_mb"][name] for row in sweep], marker="o", label=name)
        ax_time.plot(Vs, [row["seconds"][name] for row in sweep], marker="o", label=name)
        ax_rate.plot(Vs, [row["gflops"][name] for row in sweep], marker="o", label=name)
    ax_rate.plot(Vs, [row["matmul_gflops"] for row in sweep], color="black", linestyle="--", label="matmul")
    for ax, ylabel in ((ax_mem, "peak memory above inputs (MB)"), (ax_time, "s per forward+backward"),
                       (ax_rate, "GFLOP/s (6 N V H per step)")):  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_xlabel("vocabulary V")
        ax.set_ylabel(ylabel)
    ax_mem.set_yscale("log")
    s = data["setting"]
    ax_mem.set_title(f"DPO fwd+bwd, B={s['B']} T={s['T']} H={s['H']}, {data['device']}")
    ax_time.set_title(f"{data['threads']} threads")
    ax_rate.set_title("vs the matmul rate")
    ax_mem.legend(fontsize=7)
    ax_rate.legend(fontsize=7)
    return save(fig, out_dir, "dpo")


def main(out_dir: pathlib.Path, quick: bool = False, device: str = "cpu") -> dict[str, Any]:
    """Run every provider in its own process over the V sweep; write `<out_dir>/dpo.json` and the plot."""
    from common.atomic import atomic_write_json
    from common.env_info import environment

    out_dir = pathlib.Path(out_dir)
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' requested but torch.cuda.is_available() is False")
    B, T, H = (QUICK["B"], QUICK["T"], QUICK["H"]) if quick else (SETTING["B"], SETTING["T"], SETTING["H"])
    sweep_v = QUICK["sweep"] if quick else SWEEP_V
    runs = 2 if quick else 5
    N = 2 * B * T
    rows = []
    for V in sweep_v:
        shape = [
            "--B",
            str(B),
            "--T",
            str(T),
            "--H",
            str(H),
            "--V",
            str(V),
            "--runs",
            str(runs),
            "--device",
            device,
        ]
        results = {p: _spawn(["--worker", p, *shape]) for p in PROVIDERS}
        matmul = _spawn(["--worker", "matmul", *shape])["gflops"]
        flops = 6 * N * V * H
        losses = {p: r["loss"] for p, r in results.items()}
        rows.append({
            "V": V,
            "peak_mb": {p: r["peak_bytes"] / 2**20 for p, r in results.items()},
            "seconds": {p: r["seconds"] for p, r in results.items()},
            "all_seconds": {p: r["all_seconds"] for p, r in results.items()},
            "gflops": {p: flops / r["seconds"] / 1e9 for p, r in results.items()},
            "matmul_gflops": matmul,
            "ours_fraction_of_matmul": flops / results["ours"]["seconds"] / 1e9 / matmul,
            "memory_ratio": {b: results["ours"]["peak_bytes"] / results[b]["peak_bytes"] for b in BASELINES},
            "time_ratio": {b: results["ours"]["seconds"] / results[b]["seconds"] for b in BASELINES},
            "max_loss_diff_vs_eager": max(abs(v - losses["eager"]) for v in losses.values()),
        })  # fmt: skip
    main_row = next((r for r in rows if r["V"] == SETTING["V"]), rows[-1])
    targets = {
        "memory_ratio_vs_eager_at_most_0.3": main_row["memory_ratio"]["eager"] <= 0.3,
        "memory_ratio_falls_with_V": all(
            a["memory_ratio"]["eager"] >= b["memory_ratio"]["eager"]
            for a, b in zip(rows, rows[1:], strict=False)
        ),
        "time_ratio_vs_eager_at_most_1": main_row["time_ratio"]["eager"] <= 1.0,
        "time_ratio_vs_chunked_at_most_1": main_row["time_ratio"]["chunked"] <= 1.0,
    }
    data = {
        "op": "fused_linear_dpo",
        "device": device,
        "threads": torch.get_num_threads(),
        "quick": quick,
        "setting": {
            "B": B,
            "T": T,
            "H": H,
            "V": main_row["V"],
            "dtype": "float32",
            "beta": BETA,
            "loss_type": "sigmoid",
            "ignored_labels": 0,
            "runs": runs,
        },  # fmt: skip
        "providers": list(PROVIDERS),
        "sweep": rows,
        "main": main_row,
        "targets_met": targets,
        "environment": environment(device),
    }
    atomic_write_json(out_dir / "dpo.json", data)
    data["files"] = ["dpo.json", *plot(data, out_dir)]
    return data


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/bench"), help="output dir")
    parser.add_argument("--quick", action="store_true", help="one small shape, few runs (about a minute)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--worker", choices=(*PROVIDERS, "matmul"), help=argparse.SUPPRESS)
    for key in ("B", "T", "H", "V", "runs"):
        parser.add_argument(f"--{key}", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "matmul":
        print(json.dumps(matmul_worker(args.B, args.T, args.H, args.V, args.runs, args.device)))
    elif args.worker:
        print(json.dumps(worker(args.worker, args.B, args.T, args.H, args.V, args.runs, args.device)))
    else:
        result = main(args.out, quick=args.quick, device=args.device)
        for row in result["sweep"]:
            mem = ", ".join(f"{row['memory_ratio'][b]:.3f}x {b}" for b in BASELINES)
            tim = ", ".join(f"{row['time_ratio'][b]:.2f}x {b}" for b in BASELINES)
            print(f"V={row['V']}: memory {mem}; time {tim}; ours {row['gflops']['ours']:.1f} GFLOP/s "
                  f"(matmul {row['matmul_gflops']:.1f})")  # fmt: skip
        print(f"targets met: {result['targets_met']}")
        print(f"wrote {', '.join(str(args.out / f) for f in result['files'])}")

"""Benchmark: LESS-style projected per-sample gradient features, ours vs LESS's loop vs torch.func.

    python -m benchmarks.bench_grad_projection --out results/bench [--quick] [--device cpu|cuda]

Setting (LESS, Xia et al. 2024, at CPU scale): a 4-layer GPT (d = 256, T = 128, vocabulary 512) with LoRA
r = 8 on q, k, v and o (the fused c_attn is split into q/k/v Linears first, as in Llama): 65,536 trainable
parameters; 512 random sequences; per-sequence mean token cross-entropy; Adam preconditioning from an
AdamW state after one step; proj_dim 1024 and 8192. Providers, each in its own subprocess (so that peak
memory is its own), 2 threads:

- less_loop: LESS's collect_grad_reps: one example per backward, flatten the LoRA .grad, Adam direction,
  project with a stored [65536, k] float32 matrix (a memory-bound matrix-vector product per example).
- torch_func: vmap(grad) of the per-example loss over batches (functional_call), the same Adam map and
  stored-matrix projection.
- ours_dense: GradientFeatures(mode="dense", adam_state=AdamW): one forward + backward per batch, the
  companion::grad_project_dense kernel (matrix hashed on the fly, never stored).
- ours_kronecker: GradientFeatures(mode="kronecker"), no Adam (LoGra's structured projection).
- limit: a plain batched forward + backward of the same model, no per-sample work at all.

Reported per provider: examples/s over the timed examples (after one warm-up batch), and peak resident
memory above what the process held once model, data and optimizer state were loaded (VmHWM reset through
/proc/self/clear_refs, read from /proc/self/status). The dense providers' features (an 8 x 64 corner) are
checked against ours (same key, same matrix). The machine is shared: each row records the 1-minute load
average before and after the provider ran; read throughputs measured under load > 2 (2 cores) as lower
bounds. Writes `<out>/grad_projection.json` and `grad_projection.png|pdf`.
Cost: about 14 minutes on the shared 2-core machine (`--quick`: 1.5 minutes, 32 examples, proj_dim 1024).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.atomic import atomic_write_json
from common.env_info import environment
from common.memory import peak_rss_bytes, reset_peak_rss, rss_bytes
from common.plotting import new_figure, save

PROVIDERS = ("less_loop", "torch_func", "ours_dense", "ours_kronecker", "limit")
BASELINES = ("less_loop", "torch_func")
SEED = 0
# Model and data of the benchmark; quick mode only shortens the run.
VOCAB, T, N_LAYER, N_HEAD, N_EMBD, RANK = 512, 128, 4, 4, 256, 8
TRAINABLE = 4 * N_LAYER * 2 * RANK * N_EMBD  # LoRA A and B on q, k, v, o: 65,536 gradient entries D
FULL = {"n_examples": 512, "batch_size": 64, "proj_dims": [1024, 8192]}
QUICK = {"n_examples": 32, "batch_size": 16, "proj_dims": [1024]}
CHECK_ROWS, CHECK_COLS = 8, 64  # the corner of the features each provider returns for the cross-check


# ------------------------------------------------------------------------------------------- setup


class QKV(nn.Module):
    """The fused c_attn (C -> 3C) as three Linears q, k, v (C -> C) with the same weights, so that LoRA can
    target q, k, v separately as LESS does on Llama; forward concatenates them like c_attn."""

    def __init__(self, c_attn: nn.Linear) -> None:
        super().__init__()
        C = c_attn.in_features
        self.q, self.k, self.v = (nn.Linear(C, C, bias=c_attn.bias is not None) for _ in range(3))
        with torch.no_grad():
            for i, lin in enumerate((self.q, self.k, self.v)):
                lin.weight.copy_(c_attn.weight[i * C : (i + 1) * C])
                if c_attn.bias is not None:
                    lin.bias.copy_(c_attn.bias[i * C : (i + 1) * C])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.q(x), self.k(x), self.v(x)], dim=-1)  # (B, T, 3C)


def lm_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Per-sequence mean token cross-entropy [N] (LESS's per-example loss)."""
    x, y = batch
    logits = model(x).logits  # (N, T, V)
    return F.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(1)  # (N,)


def setup(n_examples: int, device: str) -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor], Any]:
    """The LoRA GPT (65,536 trainable parameters), the data, and an AdamW state after one step."""
    from common.models import GPT, GPTConfig
    from common.models.lora import apply_lora

    torch.manual_seed(SEED)
    model = GPT(GPTConfig(vocab_size=VOCAB, block_size=T, n_layer=N_LAYER, n_head=N_HEAD, n_embd=N_EMBD))
    for block in model.h:
        block.attn.c_attn = QKV(block.attn.c_attn)
    apply_lora(model, ["q", "k", "v", "attn.c_proj"], r=RANK, alpha=2 * RANK)
    model = model.to(device).eval()
    gen = torch.Generator().manual_seed(SEED + 1)
    x = torch.randint(0, VOCAB, (n_examples, T), generator=gen).to(device)
    y = torch.randint(0, VOCAB, (n_examples, T), generator=gen).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    assert sum(p.numel() for p in params) == TRAINABLE
    opt = torch.optim.AdamW(params, lr=1e-3)
    lm_loss(model, (x[:8], y[:8])).mean().backward()  # one step: B != 0, a non-trivial Adam state
    opt.step()
    opt.zero_grad(set_to_none=True)
    return model, (x, y), opt


def adam_direction(g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, b1: float, b2: float, eps: float):
    """LESS's Adam direction as in our op: m' / (sqrt(v') + eps)."""
    m1 = b1 * m + (1 - b1) * g
    v1 = b2 * v + (1 - b2) * g * g
    return m1 / (v1.sqrt() + eps)


# --------------------------------------------------------------------------------------- providers


def _flat_adam_state(model: nn.Module, opt: torch.optim.Optimizer):
    params = [p for p in model.parameters() if p.requires_grad]
    m = torch.cat([opt.state[p]["exp_avg"].flatten() for p in params])  # (D,)
    v = torch.cat([opt.state[p]["exp_avg_sq"].flatten() for p in params])  # (D,)
    b1, b2 = opt.param_groups[0]["betas"]
    return params, m, v, b1, b2, opt.param_groups[0]["eps"]


def make_provider(name: str, model: nn.Module, opt: torch.optim.Optimizer, proj_dim: int, device: str):
    """Returns (prepare, featurize(batch) -> features or None): prepare() allocates what the provider keeps
    (the stored matrix), and is counted in its peak memory but not in its time."""
    from common.ops import GradientFeatures, random_signs

    if name == "limit":

        def limit(batch):
            model.zero_grad(set_to_none=True)
            lm_loss(model, batch).sum().backward()  # batched, no per-sample work
            return None

        return (lambda: None), limit
    if name in ("ours_dense", "ours_kronecker"):
        dense = name == "ours_dense"
        gf = GradientFeatures(model, proj_dim, SEED, adam_state=opt if dense else None, mode=name[5:])
        return (lambda: None), (lambda batch: gf(batch, lm_loss))

    params, m, v, b1, b2, eps = _flat_adam_state(model, opt)
    state: dict[str, torch.Tensor] = {}

    def prepare():  # LESS's stored projection matrix, [D, k] float32 (2 GiB at k = 8192)
        state["R"] = random_signs(SEED, m.numel(), proj_dim, device=device) / proj_dim**0.5

    if name == "less_loop":

        def less_loop(batch):
            x, y = batch
            rows = []
            for i in range(x.shape[0]):
                model.zero_grad(set_to_none=True)
                lm_loss(model, (x[i : i + 1], y[i : i + 1])).sum().backward()
                g = torch.cat([p.grad.flatten() for p in params])  # (D,)
                rows.append(adam_direction(g, m, v, b1, b2, eps) @ state["R"])  # (k,) matrix-vector
            return torch.stack(rows)

        return prepare, less_loop
    if name == "torch_func":
        from torch.func import functional_call, grad, vmap

        names = [n for n, p in model.named_parameters() if p.requires_grad]
        detached = {n: p.detach() for n, p in zip(names, params, strict=True)}

        def example_loss(ps, x, y):
            logits = functional_call(model, ps, (x[None],)).logits  # (1, T, V)
            return F.cross_entropy(logits[0], y)

        per_example = vmap(grad(example_loss), in_dims=(None, 0, 0))

        def torch_func(batch):
            grads = per_example(detached, *batch)
            g = torch.cat([grads[n].flatten(1) for n in names], dim=1)  # (B, D)
            return adam_direction(g, m, v, b1, b2, eps) @ state["R"]  # (B, k)

        return prepare, torch_func
    raise ValueError(f"unknown provider {name!r}; valid: {PROVIDERS}")


def run_provider(
    name: str, proj_dim: int, n_examples: int, batch_size: int, device: str, threads: int
) -> dict:
    """One provider in this process: setup, warm-up batch, timed featurization of n_examples."""
    torch.set_num_threads(threads)
    model, (x, y), opt = setup(n_examples + batch_size, device)
    load_before = os.getloadavg()
    baseline = rss_bytes()
    reset = reset_peak_rss()
    prepare, featurize = make_provider(name, model, opt, proj_dim, device)
    prepare()
    warm = featurize((x[:batch_size], y[:batch_size]))  # warm-up (allocations, one-time init); untimed
    features = []
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for s in range(batch_size, batch_size + n_examples, batch_size):
        out = featurize((x[s : s + batch_size], y[s : s + batch_size]))
        if out is not None and not features:
            features.append(out[:CHECK_ROWS, :CHECK_COLS].detach().cpu())
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    del warm
    first_batch = (x[:batch_size], y[:batch_size])
    profile = _profile_projection(featurize, first_batch) if name == "ours_dense" else None
    return {
        "provider": name,
        "proj_dim": proj_dim,
        "examples": n_examples,
        "batch_size": 1 if name == "less_loop" else batch_size,
        "seconds": seconds,
        "examples_per_s": n_examples / seconds,
        "baseline_rss_mb": baseline / 2**20,
        "peak_rss_above_baseline_mb": (peak_rss_bytes() - baseline) / 2**20 if reset else None,
        "check_features": features[0].tolist() if features else None,
        "projection_op_seconds_per_example": profile / batch_size if profile is not None else None,
        "loadavg_before": load_before,
        "loadavg": os.getloadavg(),
    }


def _profile_projection(featurize: Callable, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Seconds one batch spends inside companion::grad_project_dense (torch.profiler, one extra batch)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        featurize(batch)
    events = [e for e in prof.key_averages() if e.key == "companion::grad_project_dense"]
    return sum(e.cpu_time_total for e in events) / 1e6


def sgemm_peak_gflops(threads: int, device: str) -> float:
    """Float32 GEMM throughput of this machine with `threads` threads: one large square-ish product
    [512, 4096] @ [4096, 4096], the best of 6 runs (the first also warms up). The ceiling for any dense
    projection on it."""
    torch.set_num_threads(threads)
    a = torch.randn(512, 4096, device=device)
    b = torch.randn(4096, 4096, device=device)
    best = float("inf")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(6):
        sync()
        t0 = time.perf_counter()
        torch.mm(a, b)
        sync()
        best = min(best, time.perf_counter() - t0)
    return 2 * 512 * 4096 * 4096 / best / 1e9


def _spawn(name: str, proj_dim: int, cfg: dict, device: str, threads: int) -> dict:
    """Runs `run_provider` in a fresh interpreter and returns its JSON."""
    repo = pathlib.Path(__file__).resolve().parents[1]
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(repo), *filter(None, [os.environ.get("PYTHONPATH")])])
    )
    env["OMP_NUM_THREADS"] = str(threads)
    cmd = [
        sys.executable, "-m", "benchmarks.bench_grad_projection", "--provider", name,
        "--proj-dim", str(proj_dim), "--n-examples", str(cfg["n_examples"]),
        "--batch-size", str(cfg["batch_size"]), "--device", device, "--threads", str(threads),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"provider {name} (proj_dim {proj_dim}) failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------- report


def flop_bound(limit_examples_per_s: float, proj_dim: int, sgemm_gflops: float) -> dict[str, float]:
    """The best any dense projection of the full gradient could do here: the limit's time per example plus
    2 D k flops (D = 65,536 gradient entries) at this machine's measured sgemm rate."""
    flops = 2.0 * TRAINABLE * proj_dim
    best = 1.0 / (1.0 / limit_examples_per_s + flops / (sgemm_gflops * 1e9))
    return {
        "projection_gflop_per_example": flops / 1e9,
        "sgemm_gflops": sgemm_gflops,
        "best_examples_per_s": best,
        "best_fraction_of_limit": best / limit_examples_per_s,
    }


def summarize(rows: list[dict], sgemm_gflops: float | None = None) -> dict[str, Any]:
    """Ratios and the stated performance targets per proj_dim, and (given the machine's sgemm rate) the
    flop bound."""
    out: dict[str, Any] = {}
    for k in sorted({r["proj_dim"] for r in rows}):
        by = {r["provider"]: r for r in rows if r["proj_dim"] == k}
        ours = by["ours_dense"]
        s: dict[str, Any] = {
            "ours_dense_vs_limit": ours["examples_per_s"] / by["limit"]["examples_per_s"],
            "ours_kronecker_vs_limit": by["ours_kronecker"]["examples_per_s"] / by["limit"]["examples_per_s"],
        }
        if sgemm_gflops:
            bound = flop_bound(by["limit"]["examples_per_s"], k, sgemm_gflops)
            bound["best_vs_torch_func"] = bound["best_examples_per_s"] / by["torch_func"]["examples_per_s"]
            op_s = ours.get("projection_op_seconds_per_example")
            if op_s:
                bound["ours_projection_op_gflops"] = bound["projection_gflop_per_example"] / op_s
            s["flop_bound"] = bound
        for b in BASELINES:
            s[f"ours_dense_vs_{b}"] = ours["examples_per_s"] / by[b]["examples_per_s"]
            s[f"ours_kronecker_vs_{b}"] = by["ours_kronecker"]["examples_per_s"] / by[b]["examples_per_s"]
            if by[b]["check_features"] is not None:
                a, e = np.array(ours["check_features"]), np.array(by[b]["check_features"])
                s[f"max_rel_diff_vs_{b}"] = float(np.abs(a - e).max() / np.abs(e).max())
        peak_ours, peak_less = (
            ours["peak_rss_above_baseline_mb"],
            by["less_loop"]["peak_rss_above_baseline_mb"],
        )
        if peak_ours is not None and peak_less:
            s["peak_ours_dense_over_less_loop"] = peak_ours / peak_less
        s["targets"] = {
            "dense within 25% of the limit": {"measured": s["ours_dense_vs_limit"], "threshold": 0.75},
            "dense >= 1.5x torch_func": {"measured": s["ours_dense_vs_torch_func"], "threshold": 1.5},
        }
        if k == 8192:
            s["targets"]["dense >= 3x less_loop"] = {
                "measured": s["ours_dense_vs_less_loop"],
                "threshold": 3.0,
            }
            if "peak_ours_dense_over_less_loop" in s:
                s["targets"]["dense peak <= 1/4 less_loop peak"] = {
                    "measured": s["peak_ours_dense_over_less_loop"],
                    "threshold": 0.25,
                    "lower_is_better": True,
                }
        for t in s["targets"].values():
            t["passed"] = (
                t["measured"] <= t["threshold"]
                if t.get("lower_is_better")
                else t["measured"] >= t["threshold"]
            )
        out[str(k)] = s
    return out


def plot(data: dict[str, Any], out_dir: pathlib.Path) -> list[str]:
    """Left: examples/s per provider and proj_dim (the limit dashed); right: peak memory above baseline."""
    rows = data["rows"]
    dims = sorted({r["proj_dim"] for r in rows})
    fig, (ax_speed, ax_mem) = new_figure(ncols=2, width=4.4)
    width = 0.8 / len(PROVIDERS)
    pos = np.arange(len(dims))
    for i, name in enumerate(PROVIDERS):
        by = {r["proj_dim"]: r for r in rows if r["provider"] == name}
        offs = pos + (i - (len(PROVIDERS) - 1) / 2) * width
        ax_speed.bar(offs, [by[k]["examples_per_s"] for k in dims], width, label=name)
        ax_mem.bar(offs, [(by[k]["peak_rss_above_baseline_mb"] or 0) / 1024 for k in dims], width, label=name)
    for ax in (ax_speed, ax_mem):
        ax.set_xticks(pos, [f"proj_dim {k}" for k in dims])
    ax_speed.set_ylabel("examples / s (higher is better)")
    ax_speed.set_title(f"LoRA GPT, Adam features, {data['device']} ({data['threads']} threads)")
    ax_speed.set_ylim(0, 1.35 * max(r["examples_per_s"] for r in rows))
    ax_speed.legend(loc="upper right", ncols=2, fontsize=7)
    ax_mem.set_ylabel("peak RSS above baseline (GiB)")
    ax_mem.set_title("memory")
    return save(fig, out_dir, "grad_projection")


def main(out_dir: pathlib.Path, quick: bool = False, device: str = "cpu") -> dict[str, Any]:
    """Run every provider at every proj_dim, one subprocess each; write the JSON and plot; return the data."""
    out_dir = pathlib.Path(out_dir)
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' requested but torch.cuda.is_available() is False")
    cfg = QUICK if quick else FULL
    threads = 2
    sgemm = sgemm_peak_gflops(threads, device)
    print(f"  float32 sgemm on this machine ({threads} threads): {sgemm:.0f} GFLOP/s", flush=True)
    rows = []
    for proj_dim in cfg["proj_dims"]:
        for name in PROVIDERS:
            row = _spawn(name, proj_dim, cfg, device, threads)
            peak = row["peak_rss_above_baseline_mb"] or float("nan")
            print(
                f"  {name:15s} k={proj_dim:5d}: {row['examples_per_s']:7.2f} examples/s, "
                f"peak +{peak:.0f} MiB (load {row['loadavg'][0]:.1f})",
                flush=True,
            )
            rows.append(row)
    data = {
        "op": "grad_projection",
        "device": device,
        "threads": threads,
        "quick": quick,
        "setting": {
            "model": f"GPT {N_LAYER} layers, d={N_EMBD}, T={T}, vocab {VOCAB}, LoRA r={RANK} on q,k,v,o",
            "trainable_params": TRAINABLE,
            **cfg,
        },
        "providers": list(PROVIDERS),
        "rows": rows,
        "sgemm_gflops": sgemm,
        "summary": summarize(rows, sgemm),
        "environment": environment(device),
    }
    atomic_write_json(out_dir / "grad_projection.json", data)
    data["files"] = ["grad_projection.json", *plot(data, out_dir)]
    return data


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/bench"), help="output dir")
    parser.add_argument("--quick", action="store_true", help="32 examples at proj_dim 1024 (under a minute)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--provider", choices=PROVIDERS, help="internal: run one provider, print its JSON")
    parser.add_argument("--proj-dim", type=int, default=1024)
    parser.add_argument("--n-examples", type=int, default=FULL["n_examples"])
    parser.add_argument("--batch-size", type=int, default=FULL["batch_size"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.provider:
        result = run_provider(
            args.provider, args.proj_dim, args.n_examples, args.batch_size, args.device, args.threads
        )
        print(json.dumps(result))
    else:
        result = main(args.out, quick=args.quick, device=args.device)
        for k, s in result["summary"].items():
            for target, t in s["targets"].items():
                print(f"k={k}: {target}: {t['measured']:.2f} ({'met' if t['passed'] else 'MISSED'})")
        print(f"wrote {', '.join(str(args.out / f) for f in result['files'])}")

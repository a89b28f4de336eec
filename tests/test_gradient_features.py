"""GradientFeatures (common.ops.gradient_features) on small LoRA GPTs and MLPs.

Against the torch.func reference (per-example vmap(grad) + materialized sign matrix) in float64 models:
dense, dense with Adam state (an AdamW optimizer or a name-keyed mapping), kronecker, plain nn.Linear
layers; against LESS's own recipe (one example per backward, flattened .grad, stored matrix); bfloat16 and
float16 models; errors that say what is wrong; and 2 processes under torchrun (gloo) gathering the same
features to rank 0 in dataset order as 1 process. This file is also the torchrun worker (`__main__`).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common.models import GPT, GPTConfig
from common.models.lora import apply_lora
from common.ops import random_signs
from common.ops.gradient_features import GradientFeatures, gradient_features_reference
from common.testing import assert_close_report, tolerance

REPO = Path(__file__).resolve().parents[1]
CONFIG = GPTConfig(vocab_size=32, block_size=8, n_layer=2, n_head=2, n_embd=16)


def _lora_gpt(dtype: torch.dtype = torch.float64, seed: int = 0) -> GPT:
    """A 2-layer GPT with LoRA r=4 on c_attn and c_proj, LoRA factors randomized (B != 0), eval mode."""
    torch.manual_seed(seed)
    model = GPT(CONFIG)
    apply_lora(model, ["c_attn", "c_proj"], r=4, alpha=8)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return model.to(dtype).eval()


def _data(n: int = 5, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, CONFIG.vocab_size, (n, CONFIG.block_size), generator=gen)
    y = torch.randint(0, CONFIG.vocab_size, (n, CONFIG.block_size), generator=gen)
    return x, y


def lm_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Per-sequence mean token cross-entropy [N] (LESS's per-example loss)."""
    x, y = batch
    logits = model(x).logits  # (N, T, V)
    return F.cross_entropy(logits.float().transpose(1, 2), y, reduction="none").mean(1)  # (N,)


def _adamw_after_steps(model: nn.Module, batch, steps: int = 2) -> torch.optim.AdamW:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        lm_loss(model, batch).mean().backward()
        opt.step()
    opt.zero_grad()
    return opt


pytestmark = pytest.mark.usefixtures("kernels")  # tests/conftest.py: fail, not skip, without common._C


# The features are float32 (the API's promise); the float64 reference is compared at the float32 table
# tolerance (measured: max error 3.7e-8 on values up to 0.18, and 1.8e-5 on Adam values up to 54).
F32 = tolerance(torch.float32)


@pytest.mark.filterwarnings("ignore:There is a performance drop")
@pytest.mark.parametrize("setting", ["dense", "adam_optimizer", "adam_mapping", "kronecker"])
def test_lora_gpt_matches_torch_func_reference(setting):
    model = _lora_gpt()
    batch = _data()
    kw: dict = {}
    if setting.startswith("adam"):
        opt = _adamw_after_steps(model, batch)
        kw["adam_state"] = opt
        if setting == "adam_mapping":
            names = {id(p): n for n, p in model.named_parameters()}
            kw = {
                "adam_state": {names[id(p)]: (s["exp_avg"], s["exp_avg_sq"]) for p, s in opt.state.items()},
                "betas": opt.param_groups[0]["betas"],
                "eps": opt.param_groups[0]["eps"],
            }
    if setting == "kronecker":
        kw["mode"] = "kronecker"
    gf = GradientFeatures(model, 96, seed=3, **kw)
    assert gf.param_names == [n for n, p in model.named_parameters() if p.requires_grad]
    features = gf(batch, lm_loss)
    assert features.shape == (5, 96) and features.dtype == torch.float32
    reference = gradient_features_reference(gf, batch, lm_loss)
    assert_close_report(features, reference, F32.atol, F32.rtol, f"GradientFeatures {setting}")


def test_dense_equals_less_recipe():
    """LESS's way: one example per backward, flatten the .grad of the LoRA parameters in named_parameters
    order, Adam map, project with the stored matrix. Ours gives the same features in one pass."""
    model = _lora_gpt()
    batch = _data(n=4)
    opt = _adamw_after_steps(model, batch)
    gf = GradientFeatures(model, 64, seed=9, adam_state=opt)
    ours = gf(batch, lm_loss)
    params = [p for p in model.parameters() if p.requires_grad]
    R = random_signs(9, sum(p.numel() for p in params), 64, dtype=torch.float64)  # (D, k) stored
    b1, b2 = opt.param_groups[0]["betas"]
    eps = opt.param_groups[0]["eps"]
    rows = []
    for i in range(4):
        model.zero_grad()
        lm_loss(model, (batch[0][i : i + 1], batch[1][i : i + 1])).sum().backward()
        directions = []
        for p in params:
            m, v = opt.state[p]["exp_avg"], opt.state[p]["exp_avg_sq"]
            m1, v1 = b1 * m + (1 - b1) * p.grad, b2 * v + (1 - b2) * p.grad**2
            directions.append((m1 / (v1.sqrt() + eps)).flatten())
        rows.append(torch.cat(directions) @ R / 8.0)  # / sqrt(64)
    assert_close_report(ours, torch.stack(rows), F32.atol, F32.rtol, "ours vs LESS per-example loop")


@pytest.mark.filterwarnings("ignore:There is a performance drop")
def test_plain_linear_layers_and_layer_selection():
    torch.manual_seed(4)
    mlp = nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 3)).double()
    x = torch.randn(7, 6, dtype=torch.float64)
    t = torch.randint(0, 3, (7,))

    def loss(model, batch):
        return F.cross_entropy(model(batch[0]), batch[1], reduction="none")

    gf = GradientFeatures(mlp, 40, seed=1)
    assert gf.param_names == ["0.weight", "2.weight"]
    reference = gradient_features_reference(gf, (x, t), loss)
    assert_close_report(gf((x, t), loss), reference, F32.atol, F32.rtol, "mlp")
    only_last = GradientFeatures(mlp, 40, seed=1, layers=["2"])
    assert only_last.param_names == ["2.weight"]
    assert_close_report(
        only_last((x, t), loss), gradient_features_reference(only_last, (x, t), loss), F32.atol, F32.rtol, "2"
    )
    # a frozen model still gives its gradients (validation features), and stays frozen
    for p in mlp.parameters():
        p.requires_grad_(False)
    frozen = GradientFeatures(mlp, 40, seed=1, layers=["0", "2"])((x, t), loss)
    assert_close_report(frozen, gf((x, t), loss), 0, 0, "frozen")
    assert not any(p.requires_grad for p in mlp.parameters())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_half_precision_models(dtype):
    """16-bit models are accepted and give float32 features close to the float32 model's: row cosines
    measured min 0.99944 (bfloat16) and 0.99996 (float16) on this batch; held to 0.995."""
    batch = _data(n=6)
    ref = GradientFeatures(_lora_gpt(torch.float32), 512, seed=5)(batch, lm_loss)
    half = GradientFeatures(_lora_gpt(dtype), 512, seed=5)(batch, lm_loss)
    assert half.dtype == torch.float32 and torch.isfinite(half).all()
    cos = F.cosine_similarity(half, ref, dim=1)
    assert cos.min().item() > 0.995, cos


def test_errors_name_the_problem():
    model = _lora_gpt()
    batch = _data()
    with pytest.raises(ValueError, match=r"per-example losses, a 1-D tensor \[N\].*shape \(\)"):
        GradientFeatures(model, 8, 0)(batch, lambda m, b: lm_loss(m, b).mean())
    with pytest.raises(ValueError, match="no LoRALinear or nn.Linear in the model matches"):
        GradientFeatures(model, 8, 0, layers=["c_fcc"])
    with pytest.raises(ValueError, match="adam_state is not available with mode='kronecker'"):
        GradientFeatures(model, 8, 0, adam_state={}, mode="kronecker")
    with pytest.raises(ValueError, match=r"adam_state has no entry for parameter 'h.0.attn.c_attn.lora_A'"):
        GradientFeatures(model, 8, 0, adam_state={})
    fresh = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    with pytest.raises(ValueError, match="no exp_avg/exp_avg_sq for parameter"):
        GradientFeatures(model, 8, 0, adam_state=fresh)
    with pytest.raises(ValueError, match="proj_dim must be positive"):
        GradientFeatures(model, 0, 0)
    tied = GPT(CONFIG)  # lm_head.weight is wte.weight
    with pytest.raises(ValueError, match="'lm_head.weight' is shared with another module"):
        GradientFeatures(tied, 8, 0, layers=["lm_head"])
    lin = nn.Linear(4, 4).double()
    twice = GradientFeatures(lin, 8, 0)
    with pytest.raises(RuntimeError, match="ran twice in one forward"):
        twice(torch.randn(3, 4, dtype=torch.float64), lambda m, b: m(m(b)).sum(1))
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        twice.featurize(torch.randn(3, 4), lambda m, b: m(b).sum(1), batch_size=0)


def test_featurize_in_batches_equals_one_call():
    model = _lora_gpt()
    gf = GradientFeatures(model, 32, seed=8)
    data = _data(n=7)
    whole = gf(data, lm_loss)
    assert_close_report(gf.featurize(data, lm_loss, batch_size=3), whole, F32.atol, F32.rtol, "batched")


# ------------------------------------------------------------------------------------- distributed


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.distributed
def test_two_ranks_gather_in_dataset_order(tmp_path):
    """torchrun, 2 gloo processes, 7 examples (shards of 4 and 3, batches of 2): rank 0 gets the same
    features in dataset order as one process (float64 models; same batches, so equal to float32 rounding)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env["OMP_NUM_THREADS"] = "1"
    if Path("/sys/class/net/lo").exists():
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        str(Path(__file__).resolve()), "--out", str(tmp_path / "features.pt"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"torchrun failed (exit {proc.returncode}):\n{proc.stderr[-6000:]}"
    gathered = torch.load(tmp_path / "features.pt", weights_only=True)
    single = GradientFeatures(_lora_gpt(), 48, seed=6).featurize(_data(n=7), lm_loss, batch_size=2)
    assert gathered.shape == (7, 48)
    assert_close_report(gathered, single, F32.atol, F32.rtol, "2 ranks vs 1")


def _worker() -> None:
    """torchrun entry point: featurize 7 examples over the process group; rank 0 saves the result."""

    from common.atomic import atomic_write_with
    from common.distributed import init_distributed, rank, shutdown

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    init_distributed()
    features = GradientFeatures(_lora_gpt(), 48, seed=6).featurize(_data(n=7), lm_loss, batch_size=2)
    if rank() == 0:
        atomic_write_with(args.out, lambda handle: torch.save(features, handle))
    else:
        assert features is None
    shutdown()


if __name__ == "__main__":
    _worker()

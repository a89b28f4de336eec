"""Worker for tests/test_distributed.py, launched by torchrun (not a test module itself).

Trains the small GPT for a few AdamW steps with `common.train.train` on a deterministic global batch and,
on rank 0, writes the per-step losses and the final parameters to --out. Run with 2 processes and with 1:
the same global batch must give the same losses and parameters.

    python -m torch.distributed.run --nproc_per_node 2 --master_addr 127.0.0.1 --master_port 29500 \
        tests/distributed_worker.py --out /tmp/ddp2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from common.atomic import atomic_write_json, atomic_write_with
from common.distributed import rank, shutdown, world_size
from common.models import GPT, GPTConfig
from common.train import TrainConfig, train

MODEL = GPTConfig(vocab_size=64, block_size=16, n_layer=2, n_head=4, n_embd=64)
GLOBAL_BATCH = 8


def get_batch(step: int, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The global batch of (inputs, next-token targets), a pure function of (step, micro).

    Rows count upwards mod V from a random start, so there is something to learn within a few steps.
    """
    g = torch.Generator().manual_seed(10_000 * step + micro)
    start = torch.randint(0, MODEL.vocab_size, (GLOBAL_BATCH, 1), generator=g)  # (B, 1)
    seq = (start + torch.arange(MODEL.block_size + 1)) % MODEL.vocab_size  # (B, T+1)
    return seq[:, :-1], seq[:, 1:]  # (B, T), (B, T)


def loss_fn(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross-entropy."""
    x, y = batch
    return model(x, y).loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    args = parser.parse_args()

    torch.set_num_threads(1)
    # float64 by default: in float32 the 2-rank all-reduce sums in another order, and AdamW turns that
    # rounding on near-zero gradients into parameter differences up to ~lr (measured 5.5e-5 at lr=1e-2;
    # losses still agree to 4e-7). In float64 both agree to ~1e-12, which makes the test sharp.
    torch.set_default_dtype(getattr(torch, args.dtype))
    torch.manual_seed(0)  # the same init everywhere (DDP would broadcast rank 0's anyway)
    model = GPT(MODEL)
    cfg = TrainConfig(
        optimizer="adamw",
        lr=1e-2,
        weight_decay=0.1,
        steps=args.steps,
        grad_accum=args.grad_accum,
        clip_grad_norm=1.0,
        seed=0,
    )
    history = train(model, loss_fn, get_batch, cfg, progress=False)

    if rank() == 0:
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        atomic_write_with(args.out / "params.pt", lambda handle: torch.save(state, handle))
        atomic_write_json(
            args.out / "result.json",
            {
                "world_size": world_size(),
                "dtype": args.dtype,
                "steps": history.step,
                "loss": history.loss,
                "grad_norm": history.grad_norm,
                "param_sum": float(sum(p.detach().double().sum() for p in model.parameters())),
            },
        )
    shutdown()


if __name__ == "__main__":
    main()

"""A small CNN that answers CharXiv's visual templates from pixels, trained with `common.train.train`.

One convolutional trunk (three conv-ReLU-maxpool blocks, 16-32-64 channels, on 64 x 64 RGB) and one linear
head per template of `chartset.HEADS` (10 number of lines, 11 intersection, 16 trend, 18 layout, 19 number
of subplots): the "template-homogeneous" model of the stress test (CharXiv Sec. 2): it sees one style and
the fixed question set, and has no text input. The loss is the sum over heads of the cross-entropy on the
rows whose label is defined (chartset.IGNORE elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from common.train import TrainConfig, train
from papers.charxiv.chartset import HEAD_QIDS, HEADS, IGNORE


@dataclass(frozen=True)
class CNNSpec:
    """Everything a trained CNN depends on besides its chart set (the key of its shared artifact)."""

    epochs: int
    batch: int
    lr: float
    width: int
    seed: int
    shift: int = 0  # augmentation: each training image is rolled by up to +-shift pixels in x and y


class ChartCNN(nn.Module):
    def __init__(self, size: int = 64, width: int = 16) -> None:
        super().__init__()
        if size % 8:
            raise ValueError(f"image size must be a multiple of 8, got {size}")
        c1, c2, c3 = width, 2 * width, 4 * width
        self.trunk = nn.Sequential(
            nn.Conv2d(3, c1, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c3, c3 // 4, 1),
            nn.ReLU(),  # a 1x1 squeeze keeps the flattened map small
            nn.Flatten(),
        )
        flat = (c3 // 4) * (size // 8) ** 2
        self.hidden = nn.Sequential(nn.Linear(flat, 64), nn.ReLU())
        self.heads = nn.ModuleList([nn.Linear(64, len(HEADS[q])) for q in HEAD_QIDS])

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = images.permute(0, 3, 1, 2).float() / 255.0 - 0.5  # (B, S, S, 3) uint8 -> (B, 3, S, S)
        h = self.hidden(self.trunk(x))  # (B, 64)
        return [head(h) for head in self.heads]  # each (B, classes of that head)


def multi_head_loss(logits: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """Sum over heads of the mean cross-entropy over rows with a defined label (labels (B, heads))."""
    total = logits[0].new_zeros(())
    for k, lg in enumerate(logits):
        keep = labels[:, k] != IGNORE
        if keep.any():
            total = total + F.cross_entropy(lg[keep], labels[keep, k])
    return total


def train_cnn(images: torch.Tensor, labels: torch.Tensor, spec: CNNSpec) -> dict[str, torch.Tensor]:
    """Train a ChartCNN on (N, S, S, 3) uint8 images and (N, heads) labels; return its state dict."""
    n = images.shape[0]
    if n < spec.batch:
        raise ValueError(f"need at least one batch of {spec.batch} charts, got {n}")
    torch.manual_seed(spec.seed)
    model = ChartCNN(images.shape[1], spec.width)
    per_epoch = n // spec.batch
    steps = spec.epochs * per_epoch
    gen = torch.Generator().manual_seed(10_000 + spec.seed)
    orders = torch.stack([torch.randperm(n, generator=gen) for _ in range(spec.epochs)])  # (epochs, N)

    def get_batch(step: int, micro_step: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, k = divmod(step, per_epoch)
        rows = orders[epoch, k * spec.batch : (k + 1) * spec.batch]  # (B,)
        x = images[rows]  # (B, S, S, 3)
        if spec.shift:  # a translation changes no label (counts, trend, layout); seeded by the step
            g = torch.Generator().manual_seed(spec.seed * 1_000_003 + step)
            dx, dy = (int(v) for v in torch.randint(-spec.shift, spec.shift + 1, (2,), generator=g))
            x = torch.roll(x, shifts=(dy, dx), dims=(1, 2))
        return x, labels[rows]

    def loss_fn(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return multi_head_loss(m(x), y)

    cfg = TrainConfig(
        optimizer="adamw",
        lr=spec.lr,
        steps=steps,
        seed=spec.seed,
        schedule="cosine",
        warmup_steps=min(20, steps // 10),
        log_every=max(1, steps // 10),
        weight_decay=1e-4,
    )
    train(model, loss_fn, get_batch, cfg, progress=False)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def load_cnn(state: dict[str, torch.Tensor], size: int, width: int) -> ChartCNN:
    model = ChartCNN(size, width)
    model.load_state_dict(state)
    return model.eval()


@torch.no_grad()
def predict(model: ChartCNN, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Class index per head, (N, heads)."""
    out = []
    for start in range(0, images.shape[0], batch):
        logits = model(images[start : start + batch])
        out.append(torch.stack([lg.argmax(1) for lg in logits], dim=1))
    return torch.cat(out)


def head_accuracy(pred: torch.Tensor, labels: torch.Tensor) -> list[float]:
    """Accuracy of each head over the rows where its label is defined (NaN when none is)."""
    accs = []
    for k in range(labels.shape[1]):
        keep = labels[:, k] != IGNORE
        accs.append(float((pred[keep, k] == labels[keep, k]).float().mean()) if keep.any() else float("nan"))
    return accs

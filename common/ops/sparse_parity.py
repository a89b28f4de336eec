"""Sparse parity on bit-packed {-1, +1} data: sampling, packing, and monomial (Fourier) correlations.

The data of Panigrahi et al. 2025 ("Progressive distillation induces an implicit curriculum", arXiv
2410.05464, section 3): x ~ Unif{-1, +1}^n and y = chi_S(x) = prod_{i in S} x_i for a hidden support S of
size k. Rows are packed into int64 words, coordinate i in bit i % 64 of word i // 64 with bit 1 meaning -1,
so chi_S(x) = (-1)^popcount(x & S) for a subset S packed the same way (`subset_masks`).

- `sample(n, k, batch, seed)`: rows of a counter-based stream (the bits of row r depend only on (seed, r),
  see csrc/include/popcount_parity.h; the hash, lowbias32, is the one of common/ops/_counter_hash.py), so
  CPU, CUDA and `sample_reference` agree bit for bit and `start=` continues the stream without overlap.
- `monomial_correlations(x_packed, f, masks)`: E_x[f(x) chi_S(x)] for many subsets S at once by popcount,
  the implicit-curriculum measure of the paper (its |E[chi_S(x) p_1(x)]|), accumulated in float64.
  `exact_monomial_correlations(fn, n, masks)` enumerates all 2^n inputs (n <= 20): no sampling noise.

Kernels: csrc/cpu/sparse_parity.cpp, csrc/cuda/sparse_parity.cu (`companion::parity_*`,
`companion::monomial_correlations*`). The `*_reference` functions are the pure-PyTorch twins the tests and
benchmarks compare against. The fused ensemble MLP of the same family is in common/ops/ensemble_mlp.py.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable, Sequence

import torch

from common.ops._counter_hash import MASK32, as_int64, lowbias32, lowbias32_t
from common.ops._extension import dispatch, extension_available

WORD_BITS = 64
MAX_EXACT_N = 20


def num_words(n: int) -> int:
    """Words per packed row of n coordinates: ceil(n / 64)."""
    return (n + WORD_BITS - 1) // WORD_BITS


# ------------------------------------------------------------------------------------------ validation


def _check_int(value: object, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def _check_subset(subset: Iterable[int], n: int, name: str) -> tuple[int, ...]:
    try:
        idx = tuple(int(i) for i in subset)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of coordinate indices, got {subset!r}") from None
    bad = [i for i in idx if not 0 <= i < n]
    if bad:
        raise ValueError(f"{name} has indices out of range [0, {n}): {bad}")
    if len(set(idx)) != len(idx):
        raise ValueError(f"{name} has repeated indices: {idx}")
    return idx


def _check_packed(x: object, name: str, dims: tuple[int, ...] = (2,)) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of int64 packed words, got {type(x).__name__}")
    if x.dtype != torch.int64:
        raise TypeError(
            f"{name} must be int64 (bit-packed signs from pack() or sample(packed=True)), got {x.dtype}"
        )
    if x.dim() not in dims:
        shapes = " or ".join(f"{d}-D" for d in dims)
        raise ValueError(f"{name} must be {shapes}, got shape {tuple(x.shape)}")
    if x.device.type not in ("cpu", "cuda"):
        raise ValueError(f"{name} must be on a CPU or CUDA device, got {x.device}")
    return x


# ------------------------------------------------------------------------------------------ subsets


def subset_masks(
    subsets: Sequence[Sequence[int]], n: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Pack index tuples like rows of x: [S, ceil(n/64)] int64, bit i set for each index i of a subset.

    The empty tuple is the constant monomial chi = 1. Indices must lie in [0, n) and not repeat.
    """
    n = _check_int(n, "n", 1)
    W = num_words(n)
    rows = []
    for s, subset in enumerate(subsets):
        words = [0] * W
        for i in _check_subset(subset, n, f"subsets[{s}]"):
            words[i // WORD_BITS] |= 1 << (i % WORD_BITS)
        rows.append([as_int64(w) for w in words])
    return torch.tensor(rows, dtype=torch.int64, device=device).reshape(len(rows), W)  # (S, W)


def all_subsets(n: int, max_degree: int, min_degree: int = 0) -> list[tuple[int, ...]]:
    """Every subset of range(n) with min_degree <= size <= max_degree, by size then lexicographically."""
    n = _check_int(n, "n", 1)
    max_degree = _check_int(max_degree, "max_degree", 0, n)
    return [s for d in range(min_degree, max_degree + 1) for s in itertools.combinations(range(n), d)]


def random_subsets(
    n: int, size: int, count: int, seed: int, avoid: Sequence[int] | None = None
) -> list[tuple[int, ...]]:
    """`count` distinct random subsets of range(n) of the given size (sorted tuples), seeded.

    With `avoid` (a support S), subsets lying entirely inside it are rejected: the paper's "Rest" monomials.
    """
    n = _check_int(n, "n", 1)
    size = _check_int(size, "size", 1, n)
    inside = set(avoid or ())
    rng = random.Random(seed)
    out: dict[tuple[int, ...], None] = {}
    for _ in range(100 * count + 100):
        if len(out) == count:
            break
        subset = tuple(sorted(rng.sample(range(n), size)))
        if not set(subset) <= inside:
            out[subset] = None
    if len(out) < count:
        raise ValueError(f"could not draw {count} distinct size-{size} subsets of {n} coordinates")
    return list(out)


# ------------------------------------------------------------------------------- counter-based hash


def _seed_key(seed: int) -> int:
    """popcount_parity.h seed_key: the 32-bit key of the stream for `seed`."""
    return lowbias32(lowbias32((seed & MASK32) ^ 0x9E3779B9) ^ (seed >> 32))


def sample_packed_reference(n: int, batch: int, seed: int, start: int = 0) -> torch.Tensor:
    """Rows start..start+batch-1 of the stream for `seed`, packed [batch, ceil(n/64)] int64; PyTorch only."""
    key = _seed_key(seed)
    rows = torch.arange(start, start + batch, dtype=torch.int64)  # (B,)
    rkey = lowbias32_t(lowbias32_t(key ^ (rows & MASK32)) ^ (rows >> 32) ^ 0x85EBCA6B)  # (B,): row_key
    words = []
    for w in range(num_words(n)):
        lo, hi = (lowbias32_t(rkey ^ lowbias32(j + 0xC2B2AE35)) for j in (2 * w, 2 * w + 1))  # (B,) each
        hi = torch.where(hi >= 1 << 31, hi - (1 << 32), hi)  # the int64 whose high half has these bits
        word = hi * (1 << 32) + lo
        rest = n - WORD_BITS * w
        if rest < WORD_BITS:
            word = word & ((1 << rest) - 1)
        words.append(word)
    return torch.stack(words, dim=1)  # (B, W)


def sample_reference(
    n: int, k: int, batch: int, seed: int, support: Sequence[int] | None = None, start: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pure-PyTorch twin of `sample`: x [batch, n] float32 in {-1, +1}, y [batch] = product over S."""
    support = tuple(range(k)) if support is None else tuple(support)
    x = unpack_reference(sample_packed_reference(n, batch, seed, start), n)  # (B, n)
    y = x[:, list(support)].prod(dim=1) if support else torch.ones(batch)  # (B,)
    return x, y


def sample(
    n: int,
    k: int,
    batch: int,
    seed: int,
    support: Sequence[int] | None = None,
    *,
    start: int = 0,
    packed: bool = False,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of (n, k)-sparse parity: x uniform on {-1, +1}^n, y = prod_{i in support} x_i.

    Returns x [batch, n] float32 (or, with packed=True, [batch, ceil(n/64)] int64 words) and y [batch]
    float32 in {-1, +1}. The support defaults to the first k coordinates; a given support must have k
    distinct indices in [0, n). Rows are rows start..start+batch-1 of the stream for `seed` (0 <= seed <
    2^63): deterministic in (seed, row index), so consecutive calls with start += batch give fresh data.
    """
    n = _check_int(n, "n", 1)
    k = _check_int(k, "k", 1)
    if k > n:
        raise ValueError(f"k must be <= n (a support of k distinct coordinates out of n), got k={k}, n={n}")
    batch = _check_int(batch, "batch", 0)
    seed = _check_int(seed, "seed", 0, (1 << 63) - 1)
    start = _check_int(start, "start", 0, (1 << 62) - batch)
    if support is None:
        support = tuple(range(k))
    support = _check_subset(support, n, "support")
    if len(support) != k:
        raise ValueError(f"support must have k={k} indices, got {len(support)}: {support}")

    def kernel() -> tuple[torch.Tensor, torch.Tensor]:
        mask = subset_masks([support], n, device)[0]  # (W,)
        x_packed, y = torch.ops.companion.parity_sample(n, batch, seed, start, mask)  # (B, W), (B,)
        return (x_packed if packed else torch.ops.companion.parity_unpack(x_packed, n)), y

    def reference() -> tuple[torch.Tensor, torch.Tensor]:
        x, y = sample_reference(n, k, batch, seed, support, start)
        return (pack_reference(x) if packed else x).to(device), y.to(device)

    return dispatch("parity_sample", torch.device(device), kernel=kernel, reference=reference)


# ------------------------------------------------------------------------------------------- packing


def _bit_weights(device: torch.device) -> torch.Tensor:
    """2^j for j < 63 and -2^63 for j = 63: summing disjoint bits with these gives the int64 word."""
    weights = [1 << j for j in range(WORD_BITS - 1)] + [-(1 << 63)]
    return torch.tensor(weights, dtype=torch.int64, device=device)  # (64,)


def pack_reference(x: torch.Tensor) -> torch.Tensor:
    """Pure-PyTorch twin of `pack`: [B, n] signs -> [B, ceil(n/64)] int64 with bit 1 where x < 0."""
    B, n = x.shape
    bits = torch.zeros(B, num_words(n) * WORD_BITS, dtype=torch.int64, device=x.device)
    bits[:, :n] = (x < 0).to(torch.int64)
    return (bits.view(B, -1, WORD_BITS) * _bit_weights(x.device)).sum(dim=-1)  # (B, W)


def unpack_reference(x_packed: torch.Tensor, n: int) -> torch.Tensor:
    """Pure-PyTorch twin of `unpack`: [B, W] int64 -> [B, n] float32 in {-1, +1}."""
    i = torch.arange(n, device=x_packed.device)
    bits = (x_packed[:, i // WORD_BITS] >> (i % WORD_BITS)) & 1  # (B, n)
    return (1 - 2 * bits).to(torch.float32)


def pack(x: torch.Tensor) -> torch.Tensor:
    """Bit-pack rows of signs: x [B, n] float, every value -1 or +1 -> [B, ceil(n/64)] int64, bit 1 = -1."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor of shape [B, n], got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a float tensor of -1/+1 values, got {x.dtype}")
    if x.dim() != 2 or x.shape[1] == 0:
        raise ValueError(f"x must be 2-D [B, n] with n >= 1, got shape {tuple(x.shape)}")
    if x.device.type not in ("cpu", "cuda"):
        raise ValueError(f"x must be on a CPU or CUDA device, got {x.device}")
    if not bool((x.abs() == 1).all()):
        bad = (x.abs() != 1).nonzero()[0].tolist()
        raise ValueError(
            f"x must hold only -1 and +1 (sparse-parity signs), got {x[tuple(bad)].item()} at {bad}"
        )
    return dispatch(
        "parity_pack",
        x.device,
        kernel=lambda: torch.ops.companion.parity_pack(x),  # (B, W)
        reference=lambda: pack_reference(x),
    )


def unpack(x_packed: torch.Tensor, n: int) -> torch.Tensor:
    """Inverse of `pack`: [B, ceil(n/64)] int64 words -> [B, n] float32 in {-1, +1}."""
    _check_packed(x_packed, "x_packed")
    n = _check_int(n, "n", 1)
    if x_packed.shape[1] != num_words(n):
        raise ValueError(
            f"x_packed must have {num_words(n)} words per row for n={n}, got {x_packed.shape[1]}"
        )
    return dispatch(
        "parity_unpack",
        x_packed.device,
        kernel=lambda: torch.ops.companion.parity_unpack(x_packed, n),  # (B, n)
        reference=lambda: unpack_reference(x_packed, n),
    )


# ------------------------------------------------------------------------------------- correlations


def monomial_correlations_reference(
    x_packed: torch.Tensor, f: torch.Tensor, masks: torch.Tensor
) -> torch.Tensor:
    """Pure-PyTorch twin of `monomial_correlations`, in float64: chi [N, S] from the count of -1
    coordinates in each subset (a 0/1 matmul, exact), then chi^T f / N; returned in f's dtype."""
    W = x_packed.shape[1]
    n = W * WORD_BITS
    neg = (unpack_reference(x_packed, n) < 0).to(torch.float64)  # (N, n)
    members = (unpack_reference(masks, n) < 0).to(torch.float64)  # (S, n)
    chi = 1 - 2 * torch.remainder(neg @ members.T, 2)  # (N, S)
    f2 = f.to(torch.float64).reshape(f.shape[0], -1)  # (N, C)
    corr = chi.T @ f2 / f.shape[0]  # (S, C)
    return (corr if f.dim() == 2 else corr[:, 0]).to(f.dtype)


def _check_correlation_inputs(x_packed: object, f: object, masks: object) -> None:
    _check_packed(x_packed, "x_packed")
    _check_packed(masks, "masks")
    if not isinstance(f, torch.Tensor):
        raise TypeError(f"f must be a torch.Tensor [N] or [N, C], got {type(f).__name__}")
    if f.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"f must be float32 or float64, got {f.dtype}")
    if f.dim() not in (1, 2) or f.shape[0] != x_packed.shape[0]:
        raise ValueError(
            f"f must be [N] or [N, C] with N = {x_packed.shape[0]} (rows of x_packed), got {tuple(f.shape)}"
        )
    if x_packed.shape[0] == 0:
        raise ValueError("x_packed must have at least one row (the correlation is a mean over rows)")
    if masks.shape[1] != x_packed.shape[1]:
        raise ValueError(
            f"masks must have {x_packed.shape[1]} words per row like x_packed, got shape {tuple(masks.shape)}"
        )
    if not (x_packed.device == f.device == masks.device):
        raise ValueError(
            f"x_packed, f and masks must be on one device, got {x_packed.device}, {f.device}, {masks.device}"
        )


def monomial_correlations(x_packed: torch.Tensor, f: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Monomial correlations: corr[s] = (1/N) sum_n f[n] chi_{S_s}(x_n), chi_S(x) = (-1)^popcount(x & S).

    x_packed [N, W] int64 rows (from `pack` or `sample(packed=True)`), f [N] or [N, C] float32/float64,
    masks [S, W] from `subset_masks`. Returns [S] (or [S, C]) in f's dtype, accumulated in float64.
    Differentiable in f.
    """
    _check_correlation_inputs(x_packed, f, masks)

    def kernel() -> torch.Tensor:
        corr = torch.ops.companion.monomial_correlations(x_packed, f.reshape(f.shape[0], -1), masks)  # (S, C)
        return corr if f.dim() == 2 else corr[:, 0]

    return dispatch(
        "monomial_correlations",
        f.device,
        kernel=kernel,
        reference=lambda: monomial_correlations_reference(x_packed, f, masks),
    )


def enumerate_inputs(n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """All 2^n points of {-1, +1}^n packed, [2^n, 1] int64 (n <= 20): row r has x_i = -1 where r has bit i."""
    n = _check_int(n, "n", 1, MAX_EXACT_N)
    return torch.arange(1 << n, dtype=torch.int64, device=device).unsqueeze(1)  # (2^n, 1)


def exact_monomial_correlations(
    fn: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    masks: torch.Tensor,
    chunk_size: int = 1 << 16,
) -> torch.Tensor:
    """E_x[fn(x) chi_S(x)] exactly, over all 2^n inputs (n <= 20; no sampling noise).

    `fn` maps x [chunk, n] float32 in {-1, +1} to [chunk] or [chunk, C]; it is called under no_grad on
    chunks of at most `chunk_size` rows. masks [S, 1] from `subset_masks(..., n)`. Returns [S] or [S, C].
    """
    x_all = enumerate_inputs(n, masks.device)  # (2^n, 1)
    with torch.no_grad():
        f = torch.cat(
            [fn(unpack(x_all[i : i + chunk_size], n)) for i in range(0, x_all.shape[0], chunk_size)]
        )
    return monomial_correlations(x_all, f, masks)


# ----------------------------------------------------------------------------- fake kernels, autograd


def _register() -> None:
    """Fake kernels and autograd for the companion sparse-parity ops (needs the loaded library)."""

    @torch.library.register_fake("companion::parity_sample")
    def _sample_fake(n, batch, seed, start, support_mask):
        W = num_words(n)
        return support_mask.new_empty(batch, W), support_mask.new_empty(batch, dtype=torch.float32)

    @torch.library.register_fake("companion::parity_pack")
    def _pack_fake(x):
        return x.new_empty(x.shape[0], num_words(x.shape[1]), dtype=torch.int64)

    @torch.library.register_fake("companion::parity_unpack")
    def _unpack_fake(x_packed, n):
        return x_packed.new_empty(x_packed.shape[0], n, dtype=torch.float32)

    @torch.library.register_fake("companion::monomial_correlations")
    def _corr_fake(x_packed, f, masks):
        torch._check(f.dim() == 2, lambda: "f must be [N, C]")
        return f.new_empty(masks.shape[0], f.shape[1])

    @torch.library.register_fake("companion::monomial_correlations_backward")
    def _corr_backward_fake(grad, x_packed, masks):
        return grad.new_empty(x_packed.shape[0], grad.shape[1])

    def _setup_context(ctx, inputs, output) -> None:
        x_packed, _, masks = inputs
        ctx.save_for_backward(x_packed, masks)

    def _backward(ctx, grad):
        x_packed, masks = ctx.saved_tensors
        grad_f = torch.ops.companion.monomial_correlations_backward(grad, x_packed, masks)  # (N, C)
        return None, grad_f, None

    torch.library.register_autograd(
        "companion::monomial_correlations", _backward, setup_context=_setup_context
    )

    # The backward is linear in `grad` with the forward as its adjoint: (1/N) chi^T and (1/N) chi. Its own
    # derivative is therefore the forward op, which makes double backward exact (a Hessian-vector product
    # through the correlations is just another correlation).
    def _backward_setup_context(ctx, inputs, output) -> None:
        _, x_packed, masks = inputs
        ctx.save_for_backward(x_packed, masks)

    def _backward_backward(ctx, grad_grad_f):
        x_packed, masks = ctx.saved_tensors
        grad_grad = torch.ops.companion.monomial_correlations(x_packed, grad_grad_f, masks)  # (S, C)
        return grad_grad, None, None

    torch.library.register_autograd(
        "companion::monomial_correlations_backward", _backward_backward, setup_context=_backward_setup_context
    )


if extension_available():
    _register()

"""Test helpers for the whole repository: one tolerance table and a comparison that says where it fails.

TOLERANCES holds the atol/rtol every kernel-vs-reference comparison uses for a dtype. They are
torch.testing.assert_close's defaults, which allow about one rounding of the output dtype (bfloat16 and
float16 results may differ from the reference by one ulp). A test that needs a wider tolerance writes it
next to the measured error that justifies it, never a bare larger number.

`assert_close_report` compares like torch.isclose (NaN equals NaN, inf must match exactly) and on failure
reports how many elements mismatch and where, with NaN and inf mismatches counted apart from finite ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float


TOLERANCES: dict[torch.dtype, Tolerance] = {
    torch.float64: Tolerance(atol=1e-7, rtol=1e-7),
    torch.float32: Tolerance(atol=1e-5, rtol=1.3e-6),
    torch.bfloat16: Tolerance(atol=1e-5, rtol=1.6e-2),  # 2^-6: one bfloat16 ulp (8 bits of mantissa)
    torch.float16: Tolerance(atol=1e-5, rtol=1e-3),  # about one float16 ulp (11 bits of mantissa)
}


def tolerance(dtype: torch.dtype) -> Tolerance:
    """The repository's tolerance for comparing results of `dtype` (KeyError names the unsupported dtype)."""
    try:
        return TOLERANCES[dtype]
    except KeyError:
        raise KeyError(f"no tolerance for {dtype}; known: {sorted(map(str, TOLERANCES))}") from None


def max_abs_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| over the elements where both are finite, in float64 (0.0 if none)."""
    a, e = actual.detach().to("cpu", torch.float64), expected.detach().to("cpu", torch.float64)
    finite = torch.isfinite(a) & torch.isfinite(e)
    return float((a - e)[finite].abs().max()) if bool(finite.any()) else 0.0


def _first_indices(mask: torch.Tensor, limit: int) -> list[tuple[int, ...]]:
    return [tuple(int(i) for i in idx) for idx in mask.nonzero()[:limit]]


def assert_close_report(
    actual: torch.Tensor,
    expected: torch.Tensor,
    atol: float,
    rtol: float,
    name: str = "tensor",
    max_listed: int = 5,
) -> None:
    """Assert |actual - expected| <= atol + rtol * |expected| elementwise, with NaN == NaN and inf exact.

    On failure raises AssertionError with the number of mismatches out of the total, counted separately
    for NaN (NaN on one side only), inf (an infinity on either side that the other does not match) and
    finite values beyond tolerance, the first `max_listed` indices of each kind with both values, and the
    largest absolute and relative errors among the finite mismatches.
    """
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: shape {tuple(actual.shape)} != expected {tuple(expected.shape)}")
    a = actual.detach().to("cpu", torch.float64)
    e = expected.detach().to("cpu", torch.float64)
    a_nan, e_nan = torch.isnan(a), torch.isnan(e)
    nan_bad = a_nan ^ e_nan
    either_inf = (torch.isinf(a) | torch.isinf(e)) & ~(a_nan | e_nan)
    inf_bad = either_inf & (a != e)
    finite = torch.isfinite(a) & torch.isfinite(e)
    err = (a - e).abs()
    finite_bad = finite & (err > atol + rtol * e.abs())
    n_bad = int(nan_bad.sum() + inf_bad.sum() + finite_bad.sum())
    if n_bad == 0:
        return

    def listing(mask: torch.Tensor) -> str:
        listed = _first_indices(mask, max_listed)
        return ", ".join(f"{idx}: {a[idx].item():.6g} vs {e[idx].item():.6g}" for idx in listed)

    lines = [
        f"{name}: {n_bad} of {a.numel()} elements mismatch (atol={atol:g}, rtol={rtol:g}, "
        f"dtypes {actual.dtype} vs {expected.dtype})",
        f"  NaN mismatches: {int(nan_bad.sum())}" + (f" at {listing(nan_bad)}" if nan_bad.any() else ""),
        f"  inf mismatches: {int(inf_bad.sum())}" + (f" at {listing(inf_bad)}" if inf_bad.any() else ""),
        f"  finite beyond tolerance: {int(finite_bad.sum())}"
        + (f" at {listing(finite_bad)}" if finite_bad.any() else ""),
    ]
    if finite_bad.any():
        worst = err.masked_fill(~finite_bad, -1.0).argmax()
        worst_idx = tuple(int(i) for i in torch.unravel_index(worst, a.shape))
        rel = (err / e.abs().clamp_min(torch.finfo(torch.float64).tiny))[finite_bad].max().item()
        lines.append(f"  max abs error {err[worst_idx].item():.3g} at {worst_idx}; max rel error {rel:.3g}")
    raise AssertionError("\n".join(lines))

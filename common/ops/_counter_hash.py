"""The counter-based hashes of csrc/include/counter_hash.h in Python, on Python ints and on int64 tensors.

- `lowbias32`: C. Wellons' 32-bit integer hash (hash-prospector, 2018; xorshift-multiply, two rounds), the
  one 32-bit hash of the repository. It keys the implicit +-1 matrix of the gradient projections
  (grad_projection.py, csrc/include/counter_hash.h) and the sparse-parity sample stream (sparse_parity.py,
  csrc/include/popcount_parity.h).
- `splitmix64`: the SplitMix64 finalizer (Steele, Lea & Flood 2014) that turns a seed and a row index into
  the 64-bit row key of the projection matrix.

torch has no uint64 (nor uint32 shifts and multiplies on CPU), so the tensor versions work on int64 bit
patterns: + and * wrap modulo 2^64 like uint64 arithmetic, `srl` is the logical right shift, and a uint32
value lives in the low half of a non-negative int64 (the low 32 bits of a wrapped product are exact). The
int versions are the arbitrary-precision oracles the tests check the kernels against. Every function here
gives the bits of its C++ twin.
"""

from __future__ import annotations

import torch

MASK32 = 0xFFFFFFFF
MASK64 = (1 << 64) - 1

# counter_hash.h constants
SPLITMIX_GAMMA = 0x9E3779B97F4A7C15
_SPLITMIX_MUL1 = 0xBF58476D1CE4E5B9
_SPLITMIX_MUL2 = 0x94D049BB133111EB
_LOWBIAS_MUL1 = 0x7FEB352D
_LOWBIAS_MUL2 = 0x846CA68B


def as_int64(value: int) -> int:
    """The int64 with the bits of the uint64 `value` (taken modulo 2^64)."""
    value &= MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def srl(x: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 bit patterns by 0 < s < 64 (>> on int64 is arithmetic)."""
    return (x >> s) & ((1 << (64 - s)) - 1)


def lowbias32(x: int) -> int:
    """lowbias32 of the uint32 x mod 2^32, in Python ints."""
    x &= MASK32
    x ^= x >> 16
    x = (x * _LOWBIAS_MUL1) & MASK32
    x ^= x >> 15
    x = (x * _LOWBIAS_MUL2) & MASK32
    return x ^ (x >> 16)


def lowbias32_t(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 elementwise on an int64 tensor holding uint32 values (0 <= x < 2^32)."""
    x = x ^ (x >> 16)
    x = (x * _LOWBIAS_MUL1) & MASK32
    x = x ^ (x >> 15)
    x = (x * _LOWBIAS_MUL2) & MASK32
    return x ^ (x >> 16)


def splitmix64(z: int) -> int:
    """SplitMix64 (counter_hash.h splitmix64: add the golden gamma, then the finalizer) in Python ints."""
    z = (z + SPLITMIX_GAMMA) & MASK64
    z = ((z ^ (z >> 30)) * _SPLITMIX_MUL1) & MASK64
    z = ((z ^ (z >> 27)) * _SPLITMIX_MUL2) & MASK64
    return z ^ (z >> 31)


def splitmix64_t(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64 elementwise on int64 bit patterns (the int64 tensor of the uint64 results)."""
    z = z + as_int64(SPLITMIX_GAMMA)
    z = (z ^ srl(z, 30)) * as_int64(_SPLITMIX_MUL1)
    z = (z ^ srl(z, 27)) * as_int64(_SPLITMIX_MUL2)
    return z ^ srl(z, 31)

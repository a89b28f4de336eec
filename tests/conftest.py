"""Fixtures and helpers every test file shares: the device list of the op tests, the fixture that makes a
missing kernel build fail (not skip) a test, and the one-line summary of failed claims."""

from __future__ import annotations

import pytest
import torch

from common.ops import _extension, extension_available

CUDA = pytest.param(
    "cuda",
    marks=[pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")],
)
DEVICES = ["cpu", CUDA]  # parametrize op tests over these; the CUDA ones run under `make test-gpu`


@pytest.fixture
def kernels(monkeypatch):
    """Use in tests that are about the compiled kernels: fail (not skip) when `common._C` is not built, and
    make sure COMPANION_REFERENCE_OPS does not silently swap the references in."""
    monkeypatch.delenv(_extension.REFERENCE_ENV, raising=False)
    assert extension_available(), f"common._C is not built ({_extension._load()}): {_extension.BUILD_HINT}"


def failed_lines(claims) -> list[str]:
    """One line per failed claim (measured vs threshold, with its details), for assertion messages."""
    return [c.line() + f"  [{c.details}]" for c in claims if not c.passed]

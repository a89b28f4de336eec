"""DDP through torchrun with gloo: 2 processes on a global batch of 8 match 1 process on the same batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "tests" / "distributed_worker.py"

pytestmark = pytest.mark.distributed


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(nproc: int, out: Path, *extra: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env["OMP_NUM_THREADS"] = "1"
    # gloo resolves the host name to pick an interface; pin it to loopback so no network is involved.
    if Path("/sys/class/net/lo").exists():
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc_per_node",
        str(nproc),
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        str(WORKER),
        "--out",
        str(out),
        *extra,
    ]
    try:
        proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"torchrun with {nproc} processes timed out after 120 s\nstderr:\n{err.stderr}")
    if proc.returncode != 0:
        tail = proc.stderr[-6000:]
        pytest.fail(f"torchrun with {nproc} processes failed (exit {proc.returncode})\nstderr:\n{tail}")
    return json.loads((out / "result.json").read_text())


def test_ddp_two_processes_match_one(tmp_path):
    two = _launch(2, tmp_path / "two")
    one = _launch(1, tmp_path / "one")
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert two["dtype"] == one["dtype"] == "float64"
    assert two["steps"] == one["steps"] == [1, 2, 3, 4, 5]
    assert two["loss"] == pytest.approx(one["loss"], rel=0, abs=1e-5)
    assert two["loss"][-1] < two["loss"][0] - 0.3  # it trained
    # Same update up to summation order in the all-reduce (float64: measured differences ~1e-14).
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-10, abs=0)
    p2 = torch.load(tmp_path / "two" / "params.pt", weights_only=True)
    p1 = torch.load(tmp_path / "one" / "params.pt", weights_only=True)
    assert p2.keys() == p1.keys()
    for name in p1:
        torch.testing.assert_close(
            p2[name], p1[name], rtol=1e-9, atol=1e-10, msg=lambda m, n=name: f"{n}: {m}"
        )

"""The `companion` command end to end: list, usage errors (exit 2), reproduce with kill, resume and skip,
report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from papers.momentum import PAPER

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def companion(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "common.cli", *args],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_list_shows_implemented_and_planned_papers_and_checks():
    result = companion("list")
    assert result.returncode == 0, result.stderr
    assert "momentum" in result.stdout and "[implemented]" in result.stdout
    assert "muse" in result.stdout and "[planned]" in result.stdout
    assert "fig_weak_error" in result.stdout
    assert "momentum_" in result.stdout.split("Checks:")[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["reproduce", "nosuchpaper"], "unknown paper 'nosuchpaper'; valid papers: "),
        (["reproduce", "momentum", "--figure", "fig_nope"], "valid figures: fig_weak_error"),
        (["reproduce", "momentum", "--scale", "huge"], "valid scales: quick, default, paper"),
        (["reproduce", "momentum", "--set", "nokey=1"], "unknown config key 'nokey'"),
        (["reproduce", "momentum", "--figure", "fig_digits_lr_sweep", "--set", "seeds=two"], "expects int"),
        (["reproduce", "muse"], "planned but has no code yet"),
        (["reproduce", "momentum", "--device", "tpu"], "valid devices: cpu, cuda"),
        (["verify", "nosuchcheck"], "valid checks:"),
        (["bench", "nosuchop"], "valid benchmarks:"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args, message, tmp_path):
    result = companion(*args, "--out", str(tmp_path)) if args[0] != "bench" else companion(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())  # a usage error runs nothing


def test_reproduce_momentum_survives_kill_resumes_skips_and_reports(tmp_path):
    out = tmp_path / "results"
    cmd = [
        sys.executable,
        "-m",
        "common.cli",
        "reproduce",
        "momentum",
        "--scale",
        "quick",
        "--out",
        str(out),
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = out / "momentum" / "fig_digits_lr_sweep" / "parts"
    deadline = time.time() + 240
    while time.time() < deadline and len(list(parts.glob("small*.json"))) < 2 and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    killed = out / "momentum" / "fig_digits_lr_sweep"
    assert not (killed / "done.json").exists()
    for path in out.rglob("*.json"):
        json.loads(path.read_text())  # whole files only
    kept = {p.name for p in parts.glob("*.json")}

    resumed = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "claims failed: 0" in resumed.stdout
    assert kept <= {p.name for p in parts.glob("*.json")}
    figures = [figure.name for figure in PAPER.figures()]
    for name in figures:
        done = json.loads((out / "momentum" / name / "done.json").read_text())
        assert done["claims"] and all(c["passed"] for c in done["claims"])
        for file in done["files"]:
            assert (out / "momentum" / name / file).stat().st_size > 0
    assert not list(out.rglob(".tmp-*"))

    again = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and again.stdout.count("skipped (complete") == len(figures)

    report = companion("report", "--out", str(out))
    assert report.returncode == 0, report.stderr
    page = (out / "index.html").read_text()
    assert "momentum/fig_weak_error/weak_error.png" in page or "fig_weak_error/" in page
    assert "class=fail" not in page and "class=pass" in page
    assert "planned" in page
    assert (out / "REPORT.md").read_text().startswith("# paper-companion results")

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


TIMINGS = {
    "seconds",
    "train_seconds",
    "finished",
    "time_utc",
    "sha256",
    "sha256_of",
}  # differ between runs by nature


def _without_timings(obj):
    """A result JSON with its timings (and the hashes that cover them) dropped, for run-to-run comparison."""
    if isinstance(obj, dict):
        return {k: _without_timings(v) for k, v in obj.items() if k not in TIMINGS}
    if isinstance(obj, list):
        return [_without_timings(v) for v in obj]
    return obj


def _json_files(root: Path) -> dict[str, object]:
    return {
        str(p.relative_to(root)): _without_timings(json.loads(p.read_text()))
        for p in sorted(root.rglob("*.json"))
    }


def test_reproduce_momentum_survives_kill_resumes_skips_and_reports(tmp_path):
    """Kill `reproduce momentum --scale quick` mid-sweep, rerun it: every JSON file (timings aside) equals
    an uninterrupted run's, figures' declared threads included (env.json records them)."""
    out = tmp_path / "results"
    cmd = [sys.executable, "-m", "common.cli", "reproduce", "momentum", "--scale", "quick", "--no-progress"]
    proc = subprocess.Popen(
        [*cmd, "--out", str(out)], cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    run_dir = out / "momentum" / "quick"
    parts = run_dir / "fig_digits_lr_sweep" / "parts"
    deadline = time.time() + 240
    while time.time() < deadline and len(list(parts.glob("small*.json"))) < 2 and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    killed = run_dir / "fig_digits_lr_sweep"
    assert not (killed / "done.json").exists()
    for path in out.rglob("*.json"):
        json.loads(path.read_text())  # whole files only
    kept = {p.name for p in parts.glob("*.json")}

    resumed = subprocess.run([*cmd, "--out", str(out)], cwd=REPO, env=ENV, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "claims failed: 0" in resumed.stdout
    assert kept <= {p.name for p in parts.glob("*.json")}
    figures = [figure.name for figure in PAPER.figures()]
    for name in figures:
        done = json.loads((run_dir / name / "done.json").read_text())
        assert done["claims"] and all(c["passed"] for c in done["claims"])
        for file in done["files"]:
            assert (run_dir / name / file).stat().st_size > 0
    assert not list(out.rglob(".tmp-*"))

    whole = tmp_path / "uninterrupted"
    clean = subprocess.run([*cmd, "--out", str(whole)], cwd=REPO, env=ENV, capture_output=True, text=True)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    resumed_files, whole_files = _json_files(out), _json_files(whole)
    assert set(resumed_files) == set(whole_files)
    for name, content in whole_files.items():
        assert resumed_files[name] == content, name

    again = subprocess.run([*cmd, "--out", str(out)], cwd=REPO, env=ENV, capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout.count("skipped (complete") == len(figures)

    report = companion("report", "--out", str(out))
    assert report.returncode == 0, report.stderr
    page = (out / "index.html").read_text()
    assert "momentum/quick/fig_weak_error/" in page
    assert "class=fail" not in page and "class=pass" in page
    assert "planned" in page
    assert (out / "REPORT.md").read_text().startswith("# paper-companion results")


def test_list_into_a_closed_pipe_ends_quietly():
    """`companion list | head -1`: no BrokenPipeError traceback."""
    result = subprocess.run(
        f"{sys.executable} -m common.cli list | head -1", shell=True, cwd=REPO, env=ENV,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.stdout.startswith("Papers:")
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr

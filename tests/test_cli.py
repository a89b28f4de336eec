"""The `companion` command end to end: list, usage errors (exit 2), reproduce with kill, resume and skip,
report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from common import registry
from common.configs import Count, Positive, Scale
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
    papers = result.stdout.split("Checks:")[0]
    for paper in registry.papers():  # every registered paper, with its status (planned ones too, if any)
        assert f"{paper.key}" in papers and f"[{paper.status}]" in papers, paper.key
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


def test_a_planned_paper_is_refused_with_a_one_line_error(monkeypatch, tmp_path, capsys):
    """Every paper has code now; a paper listed in papers/planned.py (a future one) is refused, not run."""
    import papers.planned as planned
    from common import cli
    from common.experiment import Paper

    future = Paper("future_paper", "A Future Paper", "Someone", "2027", "0000.00000", status="planned")
    monkeypatch.setattr(planned, "PLANNED", (*planned.PLANNED, future))
    code = cli.main(["reproduce", "future_paper", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "planned but has no code yet" in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


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
    assert resumed.returncode in (0, 1), resumed.stdout + resumed.stderr  # 1: some claim failed (reported)
    # the run completes and reports its claims; whether each holds is the quick-claims test's business (some
    # of the momentum figures' claims are red at quick by design)
    assert "claims failed: " in resumed.stdout
    assert kept <= {p.name for p in parts.glob("*.json")}
    figures = [figure.name for figure in PAPER.figures()]
    for name in figures:
        done = json.loads((run_dir / name / "done.json").read_text())
        assert done["claims"] and all(c["measured"] is not None or not c["passed"] for c in done["claims"])
        for file in done["files"]:
            assert (run_dir / name / file).stat().st_size > 0
    assert not list(out.rglob(".tmp-*"))

    whole = tmp_path / "uninterrupted"
    clean = subprocess.run([*cmd, "--out", str(whole)], cwd=REPO, env=ENV, capture_output=True, text=True)
    assert clean.returncode == resumed.returncode, clean.stdout + clean.stderr
    resumed_files, whole_files = _json_files(out), _json_files(whole)
    assert set(resumed_files) == set(whole_files)
    for name, content in whole_files.items():
        assert resumed_files[name] == content, name

    again = subprocess.run([*cmd, "--out", str(out)], cwd=REPO, env=ENV, capture_output=True, text=True)
    assert again.returncode == resumed.returncode and again.stdout.count("skipped (complete") == len(figures)

    report = companion("report", "--out", str(out))
    assert report.returncode == 0, report.stderr
    page = (out / "index.html").read_text()
    assert "momentum/quick/fig_weak_error/" in page
    assert "class=pass" in page
    assert all(paper.key in page for paper in registry.papers())  # every paper, run or not, has its section
    assert (out / "REPORT.md").read_text().startswith("# paper-companion results")


def test_list_into_a_closed_pipe_ends_quietly():
    """`companion list | head -1`: no BrokenPipeError traceback."""
    result = subprocess.run(
        f"{sys.executable} -m common.cli list | head -1", shell=True, cwd=REPO, env=ENV,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.stdout.startswith("Papers:")
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr


# ---------------------------------------------------------------------------------------------------------
# --version, choices, config, --dry-run, list times, --json, --strict
# ---------------------------------------------------------------------------------------------------------
def test_version_prints_package_version_and_git_sha():
    from common.cli import package_version
    from common.env_info import git_sha

    result = companion("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"companion {package_version()} (git {git_sha()})"
    assert package_version() != "unknown"


def test_fixed_values_are_choices_in_help_and_errors():
    help_text = companion("reproduce", "--help").stdout
    assert "{quick,default,paper}" in help_text and "{cpu,cuda}" in help_text and "--dry-run" in help_text
    assert "{cpu,cuda}" in companion("bench", "--help").stdout
    unknown = companion("frobnicate")
    assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1
    assert "unknown command 'frobnicate'; valid commands: list, config, reproduce" in unknown.stderr


def test_config_prints_each_field_with_value_type_range_and_meaning():
    result = companion("config", "momentum", "fig_weak_error", "--set", "mc_paths=30")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("momentum/fig_weak_error [quick] WeakErrorConfig, config hash ")
    row = next(line for line in lines if line.split()[:1] == ["mc_paths"])
    assert row.split()[1:3] == ["30", "int"] and "an integer >= 2" in row
    assert "standard errors use ddof = 1" in row  # the meaning, from the declaration's comment
    alphas = next(line for line in lines if line.split()[:1] == ["alphas"])
    assert "tuple[float, ...]" in alphas and "each: a number in [0, 1)" in alphas

    doc = json.loads(companion("config", "momentum", "fig_weak_error", "--scale", "default", "--json").stdout)
    assert doc["scale"] == "default" and doc["config_type"] == "WeakErrorConfig"
    by_name = {f["name"]: f for f in doc["fields"]}
    assert by_name["seed"] == {
        "name": "seed", "value": 0, "type": "int", "range": "an integer >= 0", "meaning": ""
    }  # fmt: skip
    bad = companion("config", "momentum", "fig_weak_error", "--set", "mc_paths=1")
    assert bad.returncode == 2 and "an integer >= 2" in bad.stderr and not bad.stdout


@dataclass(frozen=True)
class Documented:
    """A toy config.

    lr: the step size (from the docstring)
    """

    steps: Count = field(default=3, metadata={"help": "optimizer steps"})  # not this comment
    lr: Positive = 0.1  # not this comment either
    width: Count = 8  # hidden units
    depth: Count = 2


def test_config_meaning_prefers_metadata_then_docstring_then_comment():
    from common.cli import describe_config

    rows = {r["name"]: r for r in describe_config(Documented())}
    assert rows["steps"]["meaning"] == "optimizer steps"
    assert rows["lr"]["meaning"] == "the step size (from the docstring)"
    assert rows["width"]["meaning"] == "hidden units"
    assert rows["depth"]["meaning"] == "" and rows["lr"]["range"] == "a number > 0"


@dataclass(frozen=True)
class ToyCfg:
    units: Count = 2
    seed: int = 0


def _toy_paper(calls: list[str]):
    from common.claims import Claim
    from common.experiment import Figure, Paper

    def run(config, ctx):
        calls.append("run")
        print("a figure that prints to stdout")  # --json must keep this off stdout
        return {"v": [ctx.part(f"u{i}", lambda i=i: {"x": i})["x"] for i in range(config.units)]}

    def plot(data, out_dir):
        (out_dir / "plot.txt").write_text(str(data))
        return ["plot.txt"]

    def claims(data, config):
        return [Claim.check("sum", "sum >= 0", sum(data["v"]), ">=", 0.0)]

    configs = {Scale.QUICK: ToyCfg(), Scale.DEFAULT: ToyCfg(units=3)}
    figure = Figure("toy", "Toy", "Fig. 0", configs, run, plot, claims)
    paper = Paper("toy_paper", "Toy", "A", "V", "0")
    object.__setattr__(paper, "figures", lambda: [figure])
    return paper, figure


def test_dry_run_would_skip_agrees_with_run_figure(tmp_path):
    from common.cli import plan_figure
    from common.experiment import run_figure

    calls: list[str] = []
    paper, figure = _toy_paper(calls)

    def both(**kw):
        plan = plan_figure(paper, figure, Scale.QUICK, results=tmp_path, **kw)
        before = len(calls)
        result = run_figure(paper, figure, Scale.QUICK, results=tmp_path, show_progress=False, **kw)
        assert result.skipped == plan["would_skip"] == (len(calls) == before), (plan, result)
        return plan

    first = both()
    assert first["reason"] == "no complete results" and first["estimated_seconds"] is None
    second = both()
    assert second["would_skip"] and second["config_hash"] == first["config_hash"]
    done = json.loads((tmp_path / "toy_paper" / "quick" / "toy" / "done.json").read_text())
    assert done["config_hash"] == first["config_hash"] and second["estimated_seconds"] == done["seconds"]
    changed = both(overrides=["units=3"])
    assert not changed["would_skip"] and "another config" in changed["reason"]
    assert not both(overrides=["units=3"], force=True)["would_skip"]
    assert both(overrides=["units=3"])["would_skip"]
    assert not both(seed=1)["would_skip"]  # the seed is part of the config
    (tmp_path / "toy_paper" / "quick" / "toy" / "plot.txt").write_text("edited")
    corrupted = both(seed=1)
    assert not corrupted["would_skip"] and "do not verify" in corrupted["reason"]


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path):
    text = companion("reproduce", "momentum", "--dry-run", "--out", str(tmp_path))
    assert text.returncode == 0, text.stderr
    assert "would run (no complete results); estimated unknown" in text.stdout
    doc = json.loads(companion("reproduce", "momentum", "--dry-run", "--json", "--out", str(tmp_path)).stdout)
    assert doc["dry_run"] and [s["figure"] for s in doc["plan"]] == [f.name for f in PAPER.figures()]
    assert all(not s["would_skip"] and s["estimated_seconds"] is None for s in doc["plan"])
    assert all(len(s["config_hash"]) == 16 for s in doc["plan"])
    assert not any(tmp_path.iterdir())


def test_list_shows_measured_times_and_json(tmp_path):
    done = tmp_path / "momentum" / "quick" / "fig_weak_error" / "done.json"
    done.parent.mkdir(parents=True)
    done.write_text(json.dumps({"seconds": 12.5}))
    slow = tmp_path / "momentum" / "default" / "fig_weak_error" / "done.json"
    slow.parent.mkdir(parents=True)
    slow.write_text(json.dumps({"seconds": 300.0}))
    text = companion("list", "--out", str(tmp_path)).stdout
    row = next(line for line in text.splitlines() if "fig_weak_error" in line)
    assert "measured: quick 12.5 s, default 5.0 min" in row
    doc = json.loads(companion("list", "--json", "--out", str(tmp_path)).stdout)
    momentum = next(p for p in doc["papers"] if p["key"] == "momentum")
    weak = next(f for f in momentum["figures"] if f["name"] == "fig_weak_error")
    assert weak["measured_seconds"] == {"quick": 12.5, "default": 300.0}
    assert {c["paper"] for c in doc["checks"]} >= {"momentum"} and "logsumexp" in doc["benchmarks"]
    assert {p["key"]: p["status"] for p in doc["papers"]} == {p.key: p.status for p in registry.papers()}


def test_reproduce_json_is_the_only_thing_on_stdout(tmp_path, monkeypatch, capfd):
    from common import cli, registry

    calls: list[str] = []
    paper, _ = _toy_paper(calls)
    monkeypatch.setattr(registry, "paper", lambda key: paper)
    code = cli.main(["reproduce", "toy_paper", "--json", "--out", str(tmp_path)])
    out, err = capfd.readouterr()
    doc = json.loads(out)
    assert code == 0 and doc["exit_code"] == 0 and doc["claims_failed"] == 0
    [fig] = doc["figures"]
    assert fig["figure"] == "toy" and not fig["skipped"] and fig["claims"][0]["state"] == "pass"
    assert "a figure that prints to stdout" in err
    assert cli.main(["reproduce", "toy_paper", "--json", "--out", str(tmp_path)]) == 0
    assert json.loads(capfd.readouterr().out)["figures"][0]["skipped"]


def test_verify_json_and_exit_code(tmp_path, monkeypatch, capfd):
    from common import cli, registry
    from common.claims import Claim
    from common.experiment import Check

    def noisy():
        print("a check that prints")
        return [Claim.check("c", "s", 0.0, ">=", 1.0)]

    check = Check("toy_check", "toy_paper", "Toy", "Thm. 0", noisy)
    monkeypatch.setattr(registry, "checks", lambda: [check])
    code = cli.main(["verify", "toy_check", "--json", "--out", str(tmp_path)])
    out, err = capfd.readouterr()
    doc = json.loads(out)
    assert code == 1 and doc["claims_failed"] == 1 and doc["checks"][0]["claims"][0]["state"] == "fail"
    assert "a check that prints" in err and (tmp_path / "checks" / "toy_check.json").exists()


def test_report_strict_exits_1_when_a_claim_failed(tmp_path, capsys):
    from common import cli
    from common.atomic import atomic_write_json
    from common.claims import Claim

    assert cli.main(["report", "--strict", "--out", str(tmp_path)]) == 0  # nothing failed (nothing ran)
    failing = Claim.check("c", "s", 0.0, ">=", 1.0)
    record = {"name": "x", "paper": "momentum", "title": "X", "statement_ref": "Thm", "seconds": 0.1}
    atomic_write_json(tmp_path / "checks" / "x.json", {**record, "claims": [failing.to_dict()]})
    assert cli.main(["report", "--out", str(tmp_path)]) == 0  # without --strict a failed claim is a result
    assert cli.main(["report", "--strict", "--out", str(tmp_path)]) == 1
    assert "claims failed: 1" in capsys.readouterr().out


def test_bench_strict_exits_1_when_a_target_is_missed(tmp_path, monkeypatch, capsys):
    from common import cli

    bench_dir = tmp_path / "benchmarks"
    bench_dir.mkdir()
    (bench_dir / "bench_fake.py").write_text(
        "import json, pathlib, os\n"
        "def main(out_dir, quick=False, device='cpu'):\n"
        "    out = pathlib.Path(out_dir); out.mkdir(parents=True, exist_ok=True)\n"
        "    met = os.environ.get('FAKE_MET') == '1'\n"
        "    data = {'targets': [{'name': 'fast enough', 'met': met}, {'name': 'small', 'met': True}]}\n"
        "    (out / 'fake.json').write_text(json.dumps(data))\n"
        "    return data\n"
    )
    (bench_dir / "bench_none.py").write_text("def main(out_dir, quick=False, device='cpu'):\n    return {}\n")
    monkeypatch.setattr(cli, "BENCH_DIR", bench_dir)
    out = str(tmp_path / "bench")
    monkeypatch.setenv("FAKE_MET", "0")
    assert cli.main(["bench", "fake", "--out", out]) == 0  # reported, not enforced
    assert "target MISSED: fast enough" in capsys.readouterr().out
    assert cli.main(["bench", "fake", "--strict", "--out", out]) == 1
    assert cli.main(["bench", "none", "--strict", "--out", out]) == 0  # no targets: nothing to miss
    monkeypatch.setenv("FAKE_MET", "1")
    assert cli.main(["bench", "all", "--strict", "--out", out]) == 0

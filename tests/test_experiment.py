"""The experiment core: claims, config overrides, atomic writes, skip / force / resume of a figure run."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from common.atomic import atomic_write_json, atomic_write_with, read_json
from common.claims import Claim
from common.configs import ConfigError, Scale, apply_overrides, config_hash, parse_scale
from common.experiment import Figure, Paper, RunContext, load_done, run_figure

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ToyConfig:
    units: int = 4
    scale_factor: float = 2.0
    flags: tuple[int, ...] = (1, 2)
    verbose: bool = False
    seed: int = 0


def test_claim_check_computes_passed():
    assert Claim.check("a", "s", 1.0, ">=", 1.0).passed
    assert not Claim.check("a", "s", 0.99, ">=", 1.0).passed
    assert Claim.check("a", "s", 0.5, "<", 1.0).passed
    assert not Claim.check("a", "s", math.nan, "<=", 1.0).passed  # NaN never passes
    with pytest.raises(ValueError, match="comparison must be one of"):
        Claim.check("a", "s", 1.0, "==", 1.0)
    c = Claim.check("a", "s", 2.0, ">", 1.0, paper_value="p")
    assert Claim.from_dict(c.to_dict()) == c


def test_overrides_parse_types_and_reject_unknown_keys():
    cfg = apply_overrides(ToyConfig(), ["units=7", "scale_factor=0.5", "flags=3,4,5", "verbose=true"])
    assert cfg == ToyConfig(units=7, scale_factor=0.5, flags=(3, 4, 5), verbose=True)
    with pytest.raises(ConfigError, match="unknown config key 'unit'.*valid keys: flags, scale_factor"):
        apply_overrides(ToyConfig(), ["unit=3"])
    with pytest.raises(ConfigError, match="'units' expects int, got '2.5'"):
        apply_overrides(ToyConfig(), ["units=2.5"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(ToyConfig(), ["units"])
    with pytest.raises(ConfigError, match="valid scales: quick, default, paper"):
        parse_scale("huge")


def test_config_hash_is_stable_and_sensitive():
    assert config_hash(ToyConfig()) == config_hash(ToyConfig())
    assert config_hash(ToyConfig()) != config_hash(ToyConfig(units=5))
    assert config_hash(ToyConfig(), {"device": "cpu"}) != config_hash(ToyConfig(), {"device": "cuda"})


def test_atomic_write_leaves_old_file_when_writer_fails(tmp_path):
    target = tmp_path / "data.json"
    atomic_write_json(target, {"v": 1})

    def broken(handle):
        handle.write(b'{"v": ')
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write_with(target, broken)
    assert read_json(target) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["data.json"]  # no temporary left behind
    atomic_write_json(target, {"x": float("nan"), "y": (1, 2)})
    assert read_json(target) == {"x": None, "y": [1, 2]}  # strict JSON


def _toy_figure(calls: list[str], fail_after: int | None = None) -> tuple[Paper, Figure]:
    def run(config: ToyConfig, ctx: RunContext):
        values = []
        for i in range(config.units):
            if fail_after is not None and i == fail_after:
                raise KeyboardInterrupt  # what Ctrl-C does in the middle of a sweep

            def compute(i=i):
                calls.append(f"unit{i}")
                return {"value": i * config.scale_factor}

            values.append(ctx.part(f"unit{i}", compute)["value"])
        return {"values": values}

    def plot(data, out_dir: Path):
        (out_dir / "plot.txt").write_text(str(data["values"]))
        return ["plot.txt"]

    def claims(data, config):
        return [Claim.check("sum", "sum of values", sum(data["values"]), ">=", 0.0)]

    figure = Figure("toy", "Toy", "Fig. 0", {Scale.QUICK: ToyConfig()}, run, plot, claims)
    paper = Paper("toy_paper", "Toy", "A", "V", "0000.00000", figure_modules=())
    object.__setattr__(paper, "figures", lambda: [figure])
    return paper, figure


def test_run_figure_skips_complete_results_and_force_reruns(tmp_path):
    calls: list[str] = []
    paper, figure = _toy_figure(calls)
    first = run_figure(paper, figure, Scale.QUICK, results=tmp_path, show_progress=False)
    assert not first.skipped and first.claims[0].passed and first.claims[0].measured == 12.0
    assert calls == ["unit0", "unit1", "unit2", "unit3"]
    out = tmp_path / "toy_paper" / "quick" / "toy"
    for name in ("config.json", "env.json", "data.json", "done.json", "plot.txt"):
        assert (out / name).exists(), name
    assert read_json(tmp_path / "toy_paper" / "quick" / "claims.json")["toy"][0]["id"] == "sum"

    second = run_figure(paper, figure, Scale.QUICK, results=tmp_path, show_progress=False)
    assert second.skipped and second.claims == first.claims and len(calls) == 4

    forced = run_figure(paper, figure, Scale.QUICK, results=tmp_path, force=True, show_progress=False)
    assert not forced.skipped and len(calls) == 8  # --force recomputes every unit

    changed = run_figure(
        paper, figure, Scale.QUICK, results=tmp_path, overrides=["scale_factor=3"], show_progress=False
    )
    assert not changed.skipped and changed.claims[0].measured == 18.0 and len(calls) == 12
    assert read_json(out / "config.json")["scale_factor"] == 3.0


def test_interrupted_run_resumes_from_completed_units(tmp_path):
    calls: list[str] = []
    paper, figure = _toy_figure(calls, fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        run_figure(paper, figure, Scale.QUICK, results=tmp_path, show_progress=False)
    out = tmp_path / "toy_paper" / "quick" / "toy"
    assert load_done(out) is None and not (out / "data.json").exists()
    assert calls == ["unit0", "unit1"]
    paper, figure = _toy_figure(calls)
    result = run_figure(paper, figure, Scale.QUICK, results=tmp_path, show_progress=False)
    assert not result.skipped and calls == ["unit0", "unit1", "unit2", "unit3"]  # units 0-1 were reused
    assert result.claims[0].measured == 12.0


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {repo!r})
    from tests.test_experiment import ToyConfig
    from common.claims import Claim
    from common.configs import Scale
    from common.experiment import Figure, Paper, run_figure

    log = Path({log!r})
    def run(config, ctx):
        out = []
        for i in range(config.units):
            def compute(i=i):
                with log.open("a") as h:
                    h.write(f"unit{{i}}\\n")
                time.sleep(0.3)
                return {{"value": [i] * 1000}}
            out.append(ctx.part(f"unit{{i}}", compute)["value"][0])
        return {{"values": out}}
    figure = Figure("toy", "Toy", "Fig. 0", {{Scale.QUICK: ToyConfig(units=8)}}, run,
                    lambda d, o: [], lambda d, c: [Claim.check("n", "n", len(d["values"]), ">=", 8)])
    paper = Paper("toy_paper", "Toy", "A", "V", "0")
    object.__setattr__(paper, "figures", lambda: [figure])
    run_figure(paper, figure, Scale.QUICK, results=Path({results!r}), show_progress=False)
    """
)


def test_sigkill_mid_run_leaves_whole_files_and_rerun_resumes(tmp_path):
    log = tmp_path / "computed.log"
    script = KILL_SCRIPT.format(repo=str(REPO), log=str(log), results=str(tmp_path / "results"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=REPO)
    parts = tmp_path / "results" / "toy_paper" / "quick" / "toy" / "parts"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(parts.glob("unit*.json"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    out = parts.parent
    assert not (out / "done.json").exists()
    for path in out.rglob("*.json"):
        json.loads(path.read_text())  # every file on disk is whole
    done_before = len(list(parts.glob("unit*.json")))
    assert 3 <= done_before < 8
    subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, check=True, timeout=120)
    assert read_json(out / "done.json")["claims"][0]["passed"]
    computed = log.read_text().split()
    assert len(computed) - len(set(computed)) <= 1  # at most the unit in flight at the kill is redone
    assert set(computed) == {f"unit{i}" for i in range(8)}
    assert not list(out.rglob(".tmp-*"))


def test_atomic_files_get_ordinary_permissions(tmp_path):
    path = atomic_write_json(tmp_path / "r.json", {"a": 1})
    assert path.stat().st_mode & 0o777 == 0o666 & ~_current_umask()


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask

"""Results that cannot rot silently, scales kept apart, declared threads, and the shared-artifact cache.

Each kind of file a run leaves (data, done, parts, a shared artifact and its manifest) is corrupted in turn;
the rerun must notice it in one line on stderr, recompute what it vouched for, and never raise.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from common.atomic import read_json
from common.claims import Claim
from common.configs import Scale
from common.experiment import (
    Figure,
    Paper,
    RunContext,
    artifact_dir,
    load_done,
    run_figure,
    shared_artifact,
    verified_done,
)
from common.report import write_report


@dataclass(frozen=True)
class Cfg:
    units: int = 3
    seed: int = 0


@dataclass(frozen=True)
class Spec:
    width: int = 4


def _toy(calls: list[str], threads: int | None = None, seen_threads: list[int] | None = None):
    def run(config: Cfg, ctx: RunContext):
        if seen_threads is not None:
            seen_threads.append(torch.get_num_threads())
        weights = ctx.shared("weights", Spec(), lambda: calls.append("build") or {"w": torch.arange(4.0)})
        values = []
        for i in range(config.units):

            def compute(i=i):
                calls.append(f"unit{i}")
                return {"v": i}

            values.append(ctx.part(f"unit{i}", compute)["v"])
        return {"values": values, "w": float(weights["w"].sum())}

    def plot(data, out_dir: Path):
        (out_dir / "plot.txt").write_text(str(data["values"]))
        return ["plot.txt"]

    def claims(data, config):
        return [Claim.check("sum", "sum", sum(data["values"]), ">=", 0.0)]

    configs = {Scale.QUICK: Cfg(), Scale.DEFAULT: Cfg(units=4)}
    figure = Figure("toy", "Toy", "Fig. 0", configs, run, plot, claims, threads=threads)
    paper = Paper("toy_paper", "Toy", "A", "V", "0", figure_modules=())
    object.__setattr__(paper, "figures", lambda: [figure])
    return paper, figure


def _run(paper, figure, results, scale=Scale.QUICK):
    return run_figure(paper, figure, scale, results=results, show_progress=False)


def _quick_dir(results: Path) -> Path:
    return results / "toy_paper" / "quick" / "toy"


def test_quick_run_does_not_touch_default_results(tmp_path):
    calls: list[str] = []
    paper, figure = _toy(calls)
    default = _run(paper, figure, tmp_path, Scale.DEFAULT)
    before = {p: p.read_bytes() for p in default.out_dir.rglob("*") if p.is_file()}
    quick = _run(paper, figure, tmp_path, Scale.QUICK)
    assert quick.out_dir != default.out_dir and quick.out_dir == _quick_dir(tmp_path)
    assert {p: p.read_bytes() for p in default.out_dir.rglob("*") if p.is_file()} == before
    assert _run(paper, figure, tmp_path, Scale.DEFAULT).skipped
    assert calls.count("build") == 1  # the shared artifact is keyed by its spec, not by the scale
    # the report shows the newest complete scale and names the other
    write_report(tmp_path, [paper])
    md = (tmp_path / "REPORT.md").read_text()
    assert "Showing scale **quick**, the newest complete (also complete: default)" in md


@pytest.mark.parametrize("victim", ["data.json", "plot.txt", "config.json", "env.json"])
@pytest.mark.parametrize("how", ["truncate", "edit", "delete"])
def test_altered_result_file_is_named_and_recomputed(tmp_path, capsys, victim, how):
    calls: list[str] = []
    paper, figure = _toy(calls)
    first = _run(paper, figure, tmp_path)
    path = first.out_dir / victim
    original = path.read_bytes()
    if how == "truncate":
        path.write_bytes(original[: len(original) // 2])
    elif how == "edit":
        path.write_bytes(original.replace(b"0", b"7", 1) if b"0" in original else original + b" ")
    else:
        path.unlink()
    assert load_done(first.out_dir) is None
    write_report(tmp_path, [paper])
    assert f"{path}" in (tmp_path / "REPORT.md").read_text()  # named, not shown
    capsys.readouterr()
    again = _run(paper, figure, tmp_path)
    err = capsys.readouterr().err
    assert not again.skipped and len(err.strip().splitlines()) == 1 and victim in err, err
    if victim == "env.json":  # rewritten with the time of the rerun
        assert read_json(path).keys() == json.loads(original).keys()
    else:
        assert path.read_bytes() == original
    assert load_done(first.out_dir) is not None
    assert calls.count("unit0") == 1  # the intact parts were reused


@pytest.mark.parametrize("how", ["truncate", "edit", "garbage"])
def test_altered_done_json_is_named_and_recomputed(tmp_path, capsys, how):
    calls: list[str] = []
    paper, figure = _toy(calls)
    first = _run(paper, figure, tmp_path)
    done = first.out_dir / "done.json"
    text = done.read_text()
    if how == "truncate":
        done.write_text(text[: len(text) // 2])
    elif how == "edit":
        done.write_text(text.replace('"passed": true', '"passed": false'))
    else:
        done.write_bytes(b"\x00\xff not json")
    record, problem = verified_done(first.out_dir)
    assert record is None and "done.json" in problem
    capsys.readouterr()
    again = _run(paper, figure, tmp_path)
    err = capsys.readouterr().err
    assert not again.skipped and "done.json" in err and len(err.strip().splitlines()) == 1
    assert again.claims[0].passed and load_done(first.out_dir) is not None


@pytest.mark.parametrize("how", ["truncate", "edit"])
def test_altered_part_is_recomputed(tmp_path, capsys, how):
    calls: list[str] = []
    paper, figure = _toy(calls)
    first = _run(paper, figure, tmp_path)
    part = first.out_dir / "parts" / "unit1.json"
    text = part.read_text()
    part.write_text(text[:10] if how == "truncate" else text.replace('"v": 1', '"v": 5'))
    (first.out_dir / "done.json").unlink()  # as after a kill: the run resumes from its parts
    capsys.readouterr()
    again = _run(paper, figure, tmp_path)
    err = capsys.readouterr().err
    assert "unit1.json" in err and len(err.strip().splitlines()) == 1
    assert calls.count("unit1") == 2 and calls.count("unit0") == 1
    assert read_json(first.out_dir / "data.json")["values"] == [0, 1, 2] and again.claims[0].measured == 3


@pytest.mark.parametrize("victim", ["artifact", "manifest", "artifact-missing", "manifest-missing"])
def test_altered_shared_artifact_is_rebuilt(tmp_path, capsys, victim):
    built: list[int] = []

    def build():
        built.append(1)
        return {"w": torch.arange(6.0), "n": 6}

    first = shared_artifact(tmp_path, "weights", Spec(), build)
    entry = artifact_dir(tmp_path, "weights", Spec())
    artifact, manifest = entry / "artifact.pt", entry / "manifest.json"
    assert len(built) == 1 and torch.equal(first["w"], torch.arange(6.0))
    assert shared_artifact(tmp_path, "weights", Spec(), build)["n"] == 6 and len(built) == 1
    if victim == "artifact":
        data = artifact.read_bytes()
        artifact.write_bytes(data[: len(data) // 2])
    elif victim == "manifest":
        manifest.write_text("{")
    elif victim == "artifact-missing":
        artifact.unlink()
    else:
        manifest.unlink()
    capsys.readouterr()
    again = shared_artifact(tmp_path, "weights", Spec(), build)
    err = capsys.readouterr().err
    assert len(built) == 2 and torch.equal(again["w"], torch.arange(6.0))
    assert len(err.strip().splitlines()) == 1 and "rebuilding the shared artifact" in err
    assert shared_artifact(tmp_path, "weights", Spec(), build)["n"] == 6 and len(built) == 2


def test_shared_artifact_keys_by_spec_and_needs_a_frozen_dataclass(tmp_path):
    built: list[int] = []
    a = shared_artifact(tmp_path, "m", Spec(width=4), lambda: built.append(4) or {"w": 4})
    b = shared_artifact(tmp_path, "m", Spec(width=5), lambda: built.append(5) or {"w": 5})
    assert (a["w"], b["w"], built) == (4, 5, [4, 5])
    with pytest.raises(TypeError, match="frozen dataclass"):
        shared_artifact(tmp_path, "m", {"width": 4}, lambda: {})

    @dataclass
    class Mutable:
        width: int = 1

    with pytest.raises(TypeError, match="frozen dataclass"):
        shared_artifact(tmp_path, "m", Mutable(), lambda: {})
    memory = shared_artifact(tmp_path, "mem", Spec(), lambda: object(), persist=False)
    assert shared_artifact(tmp_path, "mem", Spec(), lambda: object(), persist=False) is memory


def test_declared_threads_apply_inside_run_and_are_restored(tmp_path):
    before = torch.get_num_threads()
    seen: list[int] = []
    paper, figure = _toy([], threads=1, seen_threads=seen)
    result = _run(paper, figure, tmp_path)
    assert seen == [1] and torch.get_num_threads() == before
    assert read_json(result.out_dir / "env.json")["torch_threads"] == 1
    paper, figure = _toy([], threads=None, seen_threads=seen)
    _run(paper, figure, tmp_path / "other")
    assert seen[-1] == before


def test_changed_claims_code_is_remeasured_from_data_without_a_rerun(tmp_path, capsys):
    """A skipped figure's claims come from the current claims function applied to its verified data, so a
    changed threshold or kind reaches done.json and the report without recomputing anything."""
    calls: list[str] = []
    paper, figure = _toy(calls)
    first = _run(paper, figure, tmp_path)
    assert first.claims[0].passed and first.claims[0].kind == "claim"
    capsys.readouterr()
    assert _run(paper, figure, tmp_path).skipped and capsys.readouterr().err == ""  # unchanged: silent

    def stricter(data, config):
        return [Claim.check("sum", "sum", sum(data["values"]), ">=", 100.0, kind="sanity")]

    changed = dataclasses.replace(figure, claims=stricter)
    object.__setattr__(paper, "figures", lambda: [changed])
    again = _run(paper, changed, tmp_path)
    assert again.skipped and calls.count("unit0") == 1
    assert not again.claims[0].passed and again.claims[0].kind == "sanity"
    assert "claims re-measured" in capsys.readouterr().err
    done = load_done(first.out_dir)
    assert done is not None and done["claims"][0]["threshold"] == 100.0
    assert read_json(tmp_path / "toy_paper" / "quick" / "claims.json")["toy"][0]["threshold"] == 100.0

"""Figures, Checks and Papers, and the one function that runs a figure resumably.

Flow of one figure (DESIGN.md): build the config for a scale (+ seed, + `--set` overrides), skip if
`results/<paper>/<figure>/done.json` holds the same config hash, else `run(config, ctx)` computes data,
`plot(data, out_dir)` draws, `claims(data, config)` measures the paper's statements. Every file is written
atomically and `done.json` is written last, so a killed run leaves only whole files and no `done.json`;
units of work cached with `ctx.part(...)` survive the kill and a rerun resumes from them.
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common.atomic import (
    atomic_write_json,
    atomic_write_text,
    atomic_write_with,
    json_safe,
    read_json,
    remove_stale_temporaries,
)
from common.claims import Claim
from common.configs import ConfigError, Scale, apply_overrides, config_hash, config_to_dict
from common.env_info import environment
from common.train import barrier, rank

DEFAULT_RESULTS = Path("results")
DONE = "done.json"


@dataclass(frozen=True)
class Figure:
    """One reproduced figure: configs per scale and the three functions of its module."""

    name: str
    title: str
    paper_ref: str  # which figure/theorem of the paper this stands for
    configs: Mapping[Scale, Any]
    run: Callable[[Any, RunContext], dict[str, Any]]
    plot: Callable[[dict[str, Any], Path], list[str]]
    claims: Callable[[dict[str, Any], Any], list[Claim]]
    expected: str = ""  # one line: what a reader should see

    def config_for(self, scale: Scale, seed: int | None = None, overrides: Iterable[str] = ()) -> Any:
        """The scale's config with `--seed` and `--set key=value` applied."""
        if scale not in self.configs:
            valid = ", ".join(s.value for s in self.configs)
            raise ConfigError(f"figure {self.name!r} has no {scale.value!r} config; it has: {valid}")
        config = self.configs[scale]
        if seed is not None:
            if not any(f.name == "seed" for f in dataclasses.fields(config)):
                raise ConfigError(f"figure {self.name!r} has no 'seed' in its config")
            config = dataclasses.replace(config, seed=seed)
        return apply_overrides(config, list(overrides))


@dataclass(frozen=True)
class Check:
    """One verified theorem or identity; `verify()` returns Claims (a symbolic identity measures 1.0)."""

    name: str
    paper: str
    title: str
    statement_ref: str
    verify: Callable[[], list[Claim]]


@dataclass(frozen=True)
class Paper:
    """A paper's identity and the modules of its figures (imported lazily)."""

    key: str
    title: str
    authors: str
    venue: str
    arxiv: str
    figure_modules: tuple[str, ...] = ()
    status: str = "implemented"  # or "planned"

    def figures(self) -> list[Figure]:
        import importlib

        return [importlib.import_module(m).FIGURE for m in self.figure_modules]

    def figure(self, name: str) -> Figure:
        figures = self.figures()
        for fig in figures:
            if fig.name == name:
                return fig
        valid = ", ".join(f.name for f in figures) or "(none yet)"
        raise ConfigError(f"paper {self.key!r} has no figure {name!r}; valid figures: {valid}")


@dataclass
class RunContext:
    """What `run()` gets besides its config: where to write, which device, resumable parts, progress."""

    out_dir: Path
    device: str = "cpu"
    show_progress: bool = True
    parts_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.parts_dir = self.out_dir / "parts"

    def part(self, key: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Return the cached result of one unit of work (a seed, a sweep point), computing it if absent.

        The unit is stored atomically as parts/<key>.json, so a killed run resumes at the first missing unit.
        """
        path = self.parts_dir / f"{_safe_name(key)}.json"
        cached = path.exists()
        barrier()  # under torchrun every rank takes the same branch (compute may hold collectives)
        if cached:
            return read_json(path)
        # Same types whether fresh or resumed: tuples become lists, NaN becomes None.
        value = _json_round_trip(compute())
        if is_writer():
            atomic_write_json(path, value)
        return value

    def save_npz(self, name: str, **arrays: np.ndarray) -> Path:
        """Atomically save arrays as `<out_dir>/<name>.npz`."""
        return atomic_write_with(self.out_dir / f"{name}.npz", lambda h: np.savez_compressed(h, **arrays))

    def progress(self, iterable: Iterable[Any], desc: str, total: int | None = None) -> Iterable[Any]:
        """tqdm over `iterable` when progress is shown (terminals), else the iterable itself."""
        if not self.show_progress:
            return iterable
        from tqdm.auto import tqdm

        # disable=None: bars on a terminal, none in logs and CI.
        return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True, disable=None)


@dataclass(frozen=True)
class FigureResult:
    paper: str
    figure: str
    out_dir: Path
    claims: list[Claim]
    skipped: bool
    seconds: float


def is_writer() -> bool:
    """Only one process writes results: rank 0 under torchrun, the process itself otherwise."""
    return rank() == 0


def _json_round_trip(obj: Any) -> Any:
    return json.loads(json.dumps(json_safe(obj)))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so the same seed gives the same numbers."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def figure_dir(results: Path, paper: str, figure: str) -> Path:
    return Path(results) / paper / figure


def load_done(out_dir: Path) -> dict[str, Any] | None:
    """The completion record of a figure directory, or None when the run never completed."""
    path = out_dir / DONE
    if not path.exists():
        return None
    return read_json(path)


def run_figure(
    paper: Paper,
    figure: Figure,
    scale: Scale,
    *,
    results: Path = DEFAULT_RESULTS,
    seed: int | None = None,
    overrides: Iterable[str] = (),
    device: str = "cpu",
    force: bool = False,
    show_progress: bool = True,
) -> FigureResult:
    """Run (or skip, when complete for the same config) one figure; returns its claims."""
    config = figure.config_for(scale, seed, overrides)
    digest = config_hash(config, {"device": device})
    out_dir = figure_dir(results, paper.key, figure.name)
    done = load_done(out_dir)
    if done is not None and done.get("config_hash") == digest and not force:
        claims = [Claim.from_dict(c) for c in done["claims"]]
        return FigureResult(paper.key, figure.name, out_dir, claims, skipped=True, seconds=0.0)

    writer = is_writer()
    if writer:
        _prepare_dir(out_dir, digest, force)
        config_record = {"scale": scale.value, "hash": digest, **config_to_dict(config)}
        atomic_write_json(out_dir / "config.json", config_record)
        atomic_write_json(out_dir / "env.json", environment(device))
    barrier()
    if hasattr(config, "seed"):
        seed_everything(config.seed)
    start = time.perf_counter()
    ctx = RunContext(out_dir=out_dir, device=device, show_progress=show_progress and writer)
    data = _json_round_trip(figure.run(config, ctx))  # plot and claims see exactly what goes to disk
    claims = figure.claims(data, config)
    seconds = time.perf_counter() - start
    if not writer:
        return FigureResult(paper.key, figure.name, out_dir, claims, skipped=False, seconds=seconds)
    atomic_write_json(out_dir / "data.json", data)
    files = figure.plot(data, out_dir)
    atomic_write_json(
        out_dir / DONE,
        {
            "config_hash": digest,
            "scale": scale.value,
            "title": figure.title,
            "paper_ref": figure.paper_ref,
            "expected": figure.expected,
            "files": files,
            "seconds": round(seconds, 2),
            "claims": [c.to_dict() for c in claims],
        },
    )
    write_paper_claims(results, paper)
    return FigureResult(paper.key, figure.name, out_dir, claims, skipped=False, seconds=seconds)


def write_paper_claims(results: Path, paper: Paper) -> Path:
    """Gather every completed figure's claims into results/<paper>/claims.json."""
    gathered = {}
    for fig in paper.figures():
        done = load_done(figure_dir(results, paper.key, fig.name))
        if done is not None:
            gathered[fig.name] = done["claims"]
    return atomic_write_json(Path(results) / paper.key / "claims.json", gathered)


def run_check(check: Check, results: Path = DEFAULT_RESULTS) -> list[Claim]:
    """Run one theory check and store its claims in results/checks/<name>.json."""
    start = time.perf_counter()
    claims = check.verify()
    atomic_write_json(
        Path(results) / "checks" / f"{check.name}.json",
        {
            "name": check.name,
            "paper": check.paper,
            "title": check.title,
            "statement_ref": check.statement_ref,
            "seconds": round(time.perf_counter() - start, 2),
            "claims": [c.to_dict() for c in claims],
        },
    )
    return claims


def _prepare_dir(out_dir: Path, digest: str, force: bool) -> None:
    """Mark the directory incomplete and keep resumable parts only if they belong to the same config."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / DONE).unlink(missing_ok=True)
    remove_stale_temporaries(out_dir)
    parts = out_dir / "parts"
    stamp = parts / "config_hash.txt"
    if parts.exists() and (force or not stamp.exists() or stamp.read_text().strip() != digest):
        shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    if not stamp.exists():
        atomic_write_text(stamp, digest + "\n")


def _safe_name(key: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_.=" else "_" for ch in key)

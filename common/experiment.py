"""Figures, Checks and Papers, the one function that runs a figure resumably, and the one shared-artifact
cache.

Flow of one figure: build the config for a scale (+ seed, + `--set` overrides, validated against the
ranges its fields declare), skip it if `results/<paper>/<scale>/<figure>/done.json` holds the same config
hash and every file it vouches for still has the recorded SHA-256, else `run(config, ctx)` computes data
(with torch's threads set to the figure's declared `threads` and restored afterwards), `plot(data, out_dir)`
draws, `claims(data, config)` measures the paper's statements. Every file is written atomically and
`done.json` last, so a killed run leaves only whole files and no `done.json`; units of work cached with
`ctx.part(...)` survive the kill and a rerun resumes from them. Each scale has its own directory, so a quick
run never touches default results.

A file that no longer matches its hash (data, plots, config, env, `done.json` itself, a part, a shared
artifact) is reported in one line on stderr and recomputed; nothing is trusted that cannot be verified.

Expensive artifacts that several figures share (a pretrained base model, a gradient datastore, trained
teachers) go through `ctx.shared(name, spec, build)`: keyed by the hash of a frozen spec dataclass, stored
under `results/<paper>/_shared/<name>-<hash>/` with a manifest of SHA-256s, written by rank 0 only, and
memoised in the process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import io
import json
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from common.atomic import (
    TMP_PREFIX,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    atomic_write_with,
    json_safe,
    read_json,
    remove_stale_temporaries,
)
from common.claims import Claim
from common.configs import ConfigError, Scale, apply_overrides, config_hash, config_to_dict
from common.distributed import barrier, broadcast_object, rank
from common.env_info import environment

DEFAULT_RESULTS = Path("results")
DONE = "done.json"
PARTS = "parts"
SHARED = "_shared"
MANIFEST = "manifest.json"
T = TypeVar("T")


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
    # torch threads while run() computes (None: leave torch's setting). run_figure sets it and restores the
    # previous value, so no figure's setting leaks into the next one (thread count changes float summation
    # order, hence the bits). 1 for small models, where threads cost more than they give.
    threads: int | None = None
    # Ids of the claims the test suite asserts at quick scale; the module says why each holds robustly there
    # (the smallest margin measured over seeds and thread counts).
    asserted_at_quick: tuple[str, ...] = ()

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
    """What `run()` gets besides its config: where to write, which device, resumable parts, shared
    artifacts, progress."""

    out_dir: Path
    device: str = "cpu"
    show_progress: bool = True
    shared_dir: Path | None = None  # results/<paper>/_shared; None: <out_dir>/_shared (tests, ad-hoc runs)
    parts_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.parts_dir = self.out_dir / PARTS
        if self.shared_dir is None:
            self.shared_dir = self.out_dir / SHARED

    def part(self, key: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Return the cached result of one unit of work (a seed, a sweep point), computing it if absent.

        The unit is stored atomically as parts/<key>.json with the SHA-256 of its value, so a killed run
        resumes at the first missing unit, and a part that was truncated or edited is recomputed.
        """
        path = self.parts_dir / f"{_safe_name(key)}.json"
        barrier()  # under torchrun every rank takes the same branch (compute may hold collectives)
        cached = broadcast_object(_read_part(path) if is_writer() else None)
        if cached is not None:
            return cached
        # Same types whether fresh or resumed: tuples become lists, NaN becomes None.
        value = _json_round_trip(compute())
        if is_writer():
            atomic_write_json(path, {"sha256": _json_sha256(value), "value": value})
        return value

    def shared(self, name: str, spec: Any, build: Callable[[], T], *, persist: bool = True) -> T:
        """The artifact `build()` makes for `spec`, from `results/<paper>/_shared/` when it is there and
        intact, else built (see `shared_artifact`)."""
        return shared_artifact(self.shared_dir, name, spec, build, persist=persist)

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
    config_hash: str = ""


def is_writer() -> bool:
    """Only one process writes results: rank 0 under torchrun, the process itself otherwise."""
    return rank() == 0


def notice(message: str) -> None:
    """One line on stderr (rank 0 only): a file that did not verify and is being recomputed."""
    if is_writer():
        print(f"companion: {message}", file=sys.stderr, flush=True)


def _json_round_trip(obj: Any) -> Any:
    return json.loads(json.dumps(json_safe(obj)))


def _json_sha256(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode("utf-8")).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_part(path: Path) -> Any | None:
    """A part's value when the file is there, parses and matches its recorded hash; None otherwise (with a
    notice when the file was there but bad)."""
    if not path.exists():
        return None
    try:
        record = read_json(path)
        if not isinstance(record, dict) or set(record) != {"sha256", "value"}:
            raise ValueError("not a part record")
        if _json_sha256(record["value"]) != record["sha256"]:
            raise ValueError("its value does not match its recorded SHA-256")
    except (OSError, ValueError) as err:
        notice(f"{path} is unreadable or altered ({_why(err)}); recomputing that part")
        return None
    return record["value"]


def _why(err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so the same seed gives the same numbers."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads set to `threads` inside the block and restored after it (None: unchanged)."""
    import torch

    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def figure_dir(results: Path, paper: str, scale: Scale | str, figure: str) -> Path:
    """results/<paper>/<scale>/<figure>: each scale apart, so a quick run never touches default results."""
    return Path(results) / paper / Scale(scale).value / figure


def paper_shared_dir(results: Path, paper: str) -> Path:
    """results/<paper>/_shared: artifacts shared by a paper's figures (keyed by spec, not by scale)."""
    return Path(results) / paper / SHARED


def verified_done(out_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(the completion record, None) when `done.json` is there, parses, matches its own hash and every file
    it vouches for matches its recorded SHA-256; (None, why) when it was there but did not verify; (None,
    None) when the figure never completed."""
    path = Path(out_dir) / DONE
    if not path.exists():
        return None, None
    try:
        done = read_json(path)
        recorded = done.pop("sha256")
        if _json_sha256(done) != recorded:
            return None, f"{path} was altered (it does not match its own SHA-256)"
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as err:
        return None, f"{path} is unreadable ({_why(err)})"
    for name, digest in done.get("sha256_of", {}).items():
        file = Path(out_dir) / name
        if not file.exists():
            return None, f"{file} is missing (listed in done.json)"
        if sha256_file(file) != digest:
            return None, f"{file} does not match the SHA-256 recorded in done.json"
    return done, None


def load_done(out_dir: Path) -> dict[str, Any] | None:
    """The completion record of a figure directory, or None when the run never completed or its files do
    not verify (see `verified_done`)."""
    return verified_done(out_dir)[0]


def run_hash(figure: Figure, config: Any, device: str) -> str:
    """The hash a figure's results are keyed with: its config, the device and its declared threads."""
    return config_hash(config, {"device": device, "threads": figure.threads})


@dataclass(frozen=True)
class RunState:
    """Where a figure's results for one config stand: its directory, the config's run hash, the verified
    completion record (None when absent or not intact), and why it does not verify (None when it does or
    is absent)."""

    out_dir: Path
    digest: str
    done: dict[str, Any] | None
    problem: str | None

    @property
    def complete(self) -> bool:
        """Complete and intact for this very config: `run_figure` skips it unless forced."""
        return self.done is not None and self.done.get("config_hash") == self.digest


def run_state(
    paper: Paper,
    figure: Figure,
    scale: Scale,
    config: Any,
    *,
    results: Path = DEFAULT_RESULTS,
    device: str = "cpu",
) -> RunState:
    """The state `run_figure` decides on (the CLI's dry run asks the same question)."""
    out_dir = figure_dir(results, paper.key, scale, figure.name)
    done, problem = verified_done(out_dir)
    return RunState(out_dir, run_hash(figure, config, device), done, problem)


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
    """Run (or skip, when complete and intact for the same config) one figure; returns its claims."""
    config = figure.config_for(scale, seed, overrides)
    state = run_state(paper, figure, scale, config, results=results, device=device)
    digest, out_dir, done = state.digest, state.out_dir, state.done
    if state.problem is not None:
        notice(f"{state.problem}; recomputing {paper.key}/{Scale(scale).value}/{figure.name}")
    if state.complete and not force:
        claims = _current_claims(paper, figure, config, out_dir, done, results, scale)
        return FigureResult(paper.key, figure.name, out_dir, claims, skipped=True, seconds=0.0,
                            config_hash=digest)  # fmt: skip

    writer = is_writer()
    with torch_threads(figure.threads):
        if writer:
            _prepare_dir(out_dir, digest, force)
            config_record = {"scale": Scale(scale).value, "hash": digest, **config_to_dict(config)}
            atomic_write_json(out_dir / "config.json", config_record)
            atomic_write_json(out_dir / "env.json", environment(device))
        barrier()
        if hasattr(config, "seed"):
            seed_everything(config.seed)
        start = time.perf_counter()
        ctx = RunContext(
            out_dir=out_dir,
            device=device,
            show_progress=show_progress and writer,
            shared_dir=paper_shared_dir(results, paper.key),
        )
        data = _json_round_trip(figure.run(config, ctx))  # plot and claims see exactly what goes to disk
        claims = figure.claims(data, config)
        seconds = time.perf_counter() - start
    if not writer:
        return FigureResult(paper.key, figure.name, out_dir, claims, False, seconds, digest)
    atomic_write_json(out_dir / "data.json", data)
    files = figure.plot(data, out_dir)
    record = {
        "config_hash": digest,
        "scale": Scale(scale).value,
        "title": figure.title,
        "paper_ref": figure.paper_ref,
        "expected": figure.expected,
        "files": files,
        "seconds": round(seconds, 2),
        "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds"),
        "claims": [c.to_dict() for c in claims],
        "sha256_of": _vouched_files(out_dir),
    }
    atomic_write_json(out_dir / DONE, {**record, "sha256": _json_sha256(_json_round_trip(record))})
    write_paper_claims(results, paper, scale)
    return FigureResult(paper.key, figure.name, out_dir, claims, False, seconds, digest)


def _current_claims(
    paper: Paper,
    figure: Figure,
    config: Any,
    out_dir: Path,
    done: dict[str, Any],
    results: Path,
    scale: Scale | str,
) -> list[Claim]:
    """The claims of a complete figure, measured again from its verified data.json by the current `claims`
    function (cheap: no run), so that a changed threshold, kind or statement reaches the record and the
    report without rerunning the figure; done.json is rewritten only when they changed."""
    stored = [Claim.from_dict(c) for c in done["claims"]]
    claims = figure.claims(read_json(out_dir / "data.json"), config)
    if _json_round_trip([c.to_dict() for c in claims]) == _json_round_trip([c.to_dict() for c in stored]):
        return stored  # compared as stored (NaN as null, tuples as lists)
    if is_writer():
        notice(
            f"{paper.key}/{Scale(scale).value}/{figure.name}: claims re-measured from data.json "
            "(their code changed)"
        )
        record = {k: v for k, v in done.items() if k != "sha256"}
        record["claims"] = [c.to_dict() for c in claims]
        atomic_write_json(out_dir / DONE, {**record, "sha256": _json_sha256(_json_round_trip(record))})
        write_paper_claims(results, paper, scale)
    return claims


def _vouched_files(out_dir: Path) -> dict[str, str]:
    """SHA-256 of every result file of a figure directory (its parts are checked on their own)."""
    return {
        p.name: sha256_file(p)
        for p in sorted(out_dir.iterdir())
        if p.is_file() and p.name != DONE and not p.name.startswith(TMP_PREFIX)
    }


def write_paper_claims(results: Path, paper: Paper, scale: Scale | str) -> Path:
    """Gather every completed figure's claims of one scale into results/<paper>/<scale>/claims.json."""
    gathered = {}
    for fig in paper.figures():
        done = load_done(figure_dir(results, paper.key, scale, fig.name))
        if done is not None:
            gathered[fig.name] = done["claims"]
    return atomic_write_json(Path(results) / paper.key / Scale(scale).value / "claims.json", gathered)


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
    parts = out_dir / PARTS
    stamp = parts / "config_hash.txt"
    try:
        same = stamp.read_text().strip() == digest
    except (OSError, UnicodeDecodeError):
        same = False
    if parts.exists() and (force or not same):
        shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    if not stamp.exists():
        atomic_write_text(stamp, digest + "\n")


def _safe_name(key: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_.=" else "_" for ch in key)


# ---------------------------------------------------------------------------------------------------------
# The shared-artifact cache
# ---------------------------------------------------------------------------------------------------------
ARTIFACT = "artifact.pt"
_MEMO: dict[Path, tuple[tuple[int, int], Any]] = {}  # entry dir -> ((mtime_ns, size) of the artifact, value)
_MEMO_LIMIT = 64


def artifact_dir(shared_dir: Path, name: str, spec: Any) -> Path:
    """Where `shared_artifact` keeps `name` for `spec`: <shared_dir>/<name>-<hash of spec>."""
    _require_spec(name, spec)
    return Path(shared_dir) / f"{_safe_name(name)}-{config_hash(spec)}"


def shared_artifact(
    shared_dir: Path, name: str, spec: Any, build: Callable[[], T], *, persist: bool = True
) -> T:
    """The artifact `build()` makes for `spec` (a frozen dataclass that holds everything the artifact
    depends on), built once and then reused.

    On disk (persist=True): `<shared_dir>/<name>-<hash of spec>/artifact.pt` (torch.save of what `build`
    returns: tensors, dicts, lists, numbers, strings; loaded with weights_only=True) and `manifest.json`
    (the spec, written last, with the artifact's SHA-256). An entry whose manifest is missing or unreadable
    or whose artifact does not match is rebuilt, with a one-line notice. Under torchrun every rank takes the
    same branch (rank 0 decides); every rank runs `build` (it may hold collectives), rank 0 alone writes.
    In the process, the value is memoised while the file on disk is unchanged; persist=False memoises only.
    """
    import torch

    entry = artifact_dir(shared_dir, name, spec)
    artifact, manifest = entry / ARTIFACT, entry / MANIFEST
    if not persist:
        key = entry / "memory"
        if key not in _MEMO:
            _remember(key, (0, 0), build())
        return _MEMO[key][1]
    barrier()
    state, verified = _entry_state(entry) if is_writer() else (None, None)
    state = broadcast_object(state)
    if state == "ok":
        stamp = _stamp(artifact)
        memo = _MEMO.get(entry)
        if memo is not None and memo[0] == stamp:
            return memo[1]
        blob = verified if verified is not None else artifact.read_bytes()  # rank 0 read it to verify it
        value = torch.load(io.BytesIO(blob), weights_only=True)
        _remember(entry, stamp, value)
        return value
    if state != "absent":
        notice(f"{state}; rebuilding the shared artifact {entry.name}")
    value = build()
    if is_writer():
        manifest.unlink(missing_ok=True)
        buffer = io.BytesIO()
        torch.save(value, buffer)
        blob = buffer.getvalue()
        atomic_write_bytes(artifact, blob)
        atomic_write_json(
            manifest,
            {
                "name": name,
                "spec_type": type(spec).__qualname__,
                "spec": config_to_dict(spec),
                "sha256": hashlib.sha256(blob).hexdigest(),
            },
        )
        _remember(entry, _stamp(artifact), value)
    barrier()
    return value


def memoised(name: str, spec: Any, build: Callable[[], T]) -> T:
    """`build()` for `spec`, computed once per process (a cheap artifact every stage reads, or one that
    torch.load cannot hold); the same keying as `shared_artifact`, nothing on disk."""
    return shared_artifact(Path("<memory>"), name, spec, build, persist=False)


def _entry_state(entry: Path) -> tuple[str, bytes | None]:
    """('ok', the artifact's bytes once verified, or None when the process memo vouches for it), or
    ('absent', None), or (why the entry does not verify, None)."""
    artifact, manifest = entry / ARTIFACT, entry / MANIFEST
    if not manifest.exists():
        why = "absent" if not artifact.exists() else f"{manifest} is missing (a build was interrupted)"
        return why, None
    try:
        recorded = read_json(manifest)["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"{manifest} is unreadable ({_why(err)})", None
    if not artifact.exists():
        return f"{artifact} is missing", None
    memo = _MEMO.get(entry)
    if memo is not None and memo[0] == _stamp(artifact):
        return "ok", None  # verified when it was loaded or written in this process, unchanged since
    blob = artifact.read_bytes()
    if hashlib.sha256(blob).hexdigest() != recorded:
        return f"{artifact} does not match the SHA-256 in its manifest", None
    return "ok", blob


def _stamp(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_mtime_ns, info.st_size


def _remember(key: Path, stamp: tuple[int, int], value: Any) -> None:
    if key not in _MEMO and len(_MEMO) >= _MEMO_LIMIT:
        _MEMO.pop(next(iter(_MEMO)))
    _MEMO[key] = (stamp, value)


def _require_spec(name: str, spec: Any) -> None:
    params = getattr(type(spec), "__dataclass_params__", None)
    if params is None or not params.frozen:
        raise TypeError(
            f"the spec of shared artifact {name!r} must be a frozen dataclass instance (everything the "
            f"artifact depends on), got {type(spec).__name__}"
        )

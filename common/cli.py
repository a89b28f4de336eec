"""`companion`: list, config, reproduce, verify, bench, report.

Exit codes: 0 when every claim passed, 1 when a claim failed (`bench --strict`: a benchmark target was
missed; `report --strict`: the report shows a failed claim), 2 for a usage error (unknown command, paper,
figure, scale, device, check or config key: one line on stderr that lists the valid names).

`--json` (list, config, reproduce, verify) prints one JSON document on stdout and nothing else: whatever a
figure or check prints while it runs goes to stderr.

Benchmark targets (`bench --strict`): a benchmark states its targets in the JSON it writes
(`<out>/<name>.json`) as `"targets": [{"name": ..., "met": true|false}, ...]`; the forms the existing
benchmarks use are read too (`"targets": {name: {"met"|"passed": bool}}`, `"targets_met": {name: bool}`,
at any depth; see `common.report.bench_targets`). A benchmark without targets cannot fail `--strict`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import inspect
import io
import json
import os
import re
import sys
import textwrap
import time
import tokenize
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common.configs import ConfigError, Scale, _is_union, _strip_annotated, parse_scale
from common.distributed import shutdown
from common.experiment import (
    DEFAULT_RESULTS,
    DONE,
    Figure,
    Paper,
    figure_dir,
    is_writer,
    run_check,
    run_figure,
    run_hash,
    run_state,
)

EXIT_OK, EXIT_CLAIM_FAILED, EXIT_USAGE = 0, 1, 2
BENCH_DIR = Path(__file__).resolve().parent.parent / "benchmarks"
SCALES = tuple(s.value for s in Scale)
DEVICES = ("cpu", "cuda")
PACKAGE = "paper-companion"


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors in one line (exit 2) and invalid choices worded like the other usage
    errors: "unknown scale 'huge'; valid scales: quick, default, paper"."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_USAGE, f"companion: error: {message} (see '{self.prog} --help')\n")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if action.choices is not None and value not in action.choices:
            noun = action.dest if action.dest != argparse.SUPPRESS else "value"
            valid = ", ".join(str(c) for c in action.choices)
            raise argparse.ArgumentError(action, f"unknown {noun} {value!r}; valid {noun}s: {valid}")


class _Version(argparse.Action):
    """--version: the package version and the checkout's git sha (computed only when asked)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(version_line())
        parser.exit(EXIT_OK)


def package_version() -> str:
    """The installed package's version (pyproject.toml's when it is not installed), or 'unknown'."""
    from importlib import metadata

    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        import tomllib

        try:
            with open(BENCH_DIR.parent / "pyproject.toml", "rb") as handle:
                return str(tomllib.load(handle)["project"]["version"])
        except (OSError, KeyError, ValueError):
            return "unknown"


def version_line() -> str:
    from common.env_info import git_sha

    return f"companion {package_version()} (git {git_sha()})"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="companion", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action=_Version, help="print the package version and the git sha")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    lst = sub.add_parser(
        "list",
        help="papers (implemented and planned), their figures (with measured times), checks, benchmarks",
    )
    lst.add_argument(
        "--out", type=Path, default=DEFAULT_RESULTS, help="results directory to read times from (results)"
    )
    lst.add_argument("--json", action="store_true", help="print one JSON document instead of text")

    cfg = sub.add_parser("config", help="print a figure's resolved config: value, type, range, meaning")
    cfg.add_argument("paper", help="paper key")
    cfg.add_argument("figure", help="figure name (see `companion list`)")
    _add_config_args(cfg)
    cfg.add_argument("--json", action="store_true", help="print one JSON document instead of a table")

    rep = sub.add_parser("reproduce", help="run a paper's figures (or all papers') and measure their claims")
    rep.add_argument("paper", help="paper key, or 'all'")
    rep.add_argument("--figure", action="append", default=None, help="only this figure (repeatable)")
    _add_config_args(rep)
    rep.add_argument("--out", type=Path, default=DEFAULT_RESULTS, help="results directory (default: results)")
    rep.add_argument("--force", action="store_true", help="rerun figures whose results are complete")
    rep.add_argument("--no-progress", action="store_true", help="no progress bars")
    rep.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (config hash, run or skip, estimated time) and run nothing",
    )
    rep.add_argument("--json", action="store_true", help="print one JSON document (results or plan)")

    ver = sub.add_parser("verify", help="run theory checks (proofs_checks/)")
    ver.add_argument("check", nargs="?", default="all", help="check name, paper key, or 'all'")
    ver.add_argument("--out", type=Path, default=DEFAULT_RESULTS, help="results directory (default: results)")
    ver.add_argument("--json", action="store_true", help="print one JSON document instead of text")

    ben = sub.add_parser("bench", help="run kernel benchmarks (benchmarks/bench_<op>.py)")
    ben.add_argument("op", nargs="?", default="all", help="op family name, or 'all'")
    ben.add_argument("--out", type=Path, default=DEFAULT_RESULTS / "bench", help="default: results/bench")
    ben.add_argument("--quick", action="store_true", help="small shapes, few repeats")
    ben.add_argument("--device", default="cpu", choices=DEVICES, help="cpu | cuda (default: cpu)")
    ben.add_argument(
        "--strict",
        action="store_true",
        help='exit 1 when a target in the written JSON is missed ("targets": [{"name", "met"}])',
    )

    rpt = sub.add_parser("report", help="write results/index.html and results/REPORT.md")
    rpt.add_argument("--out", type=Path, default=DEFAULT_RESULTS, help="results directory (default: results)")
    rpt.add_argument("--strict", action="store_true", help="exit 1 when the report shows a failed claim")
    return parser


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scale", default="quick", choices=SCALES, help="quick | default | paper (default: quick)"
    )
    p.add_argument("--seed", type=int, default=None, help="override the config's seed")
    p.add_argument("--device", default="cpu", choices=DEVICES, help="cpu | cuda (default: cpu)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field (must exist; keeps its type and declared range); repeatable",
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = COMMANDS[args.command](args)
        shutdown()  # under torchrun: every rank reaches the end before the process group goes
        return code
    except ConfigError as err:
        print(f"companion: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `companion list | head -1`: the reader has gone; end quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the interpreter's final flush does not raise either
        return EXIT_OK
    except KeyboardInterrupt:
        print(
            "companion: interrupted; completed units are kept, rerun the same command to resume",
            file=sys.stderr,
        )
        return 130


# ---------------------------------------------------------------------------------------------------------
# Output helpers
# ---------------------------------------------------------------------------------------------------------
def _print_json(obj: Any) -> None:
    from common.atomic import json_safe

    print(json.dumps(json_safe(obj), indent=2))


@contextlib.contextmanager
def _stdout_to_stderr(enabled: bool) -> Iterator[None]:
    """While a --json command runs figures or checks, send what they print (Python's and the C level's
    file descriptor 1) to stderr, so that stdout holds the JSON document only."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no real file descriptor 1 (an embedding host): redirect Python's stdout only
        with contextlib.redirect_stdout(sys.stderr):
            yield
        return
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _claim_records(claims: list) -> list[dict[str, Any]]:
    return [c.to_dict() for c in claims]


def _seconds_text(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def recorded_seconds(results: Path, paper: str, scale: Scale | str, figure: str) -> float | None:
    """The seconds in a figure's done.json at a scale (the last completed run, whatever its config), or
    None when there is none or it cannot be read."""
    from common.atomic import read_json

    try:
        seconds = read_json(figure_dir(results, paper, scale, figure) / DONE).get("seconds")
    except (OSError, ValueError, AttributeError):
        return None
    return float(seconds) if isinstance(seconds, int | float) else None


# ---------------------------------------------------------------------------------------------------------
# list
# ---------------------------------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    from common import registry

    listed = []
    for paper in registry.papers():
        entry: dict[str, Any] = {
            "key": paper.key,
            "status": paper.status,
            "title": paper.title,
            "authors": paper.authors,
            "venue": paper.venue,
            "arxiv": paper.arxiv,
            "figures": [],
        }
        if paper.status == "implemented":
            for fig in paper.figures():
                measured = {
                    s.value: recorded_seconds(args.out, paper.key, s, fig.name)
                    for s in (Scale.QUICK, Scale.DEFAULT)
                }
                entry["figures"].append(
                    {
                        "name": fig.name,
                        "title": fig.title,
                        "paper_ref": fig.paper_ref,
                        "scales": [s.value for s in fig.configs],
                        "measured_seconds": measured,
                    }
                )
        listed.append(entry)
    checks = [
        {"name": c.name, "paper": c.paper, "title": c.title, "statement_ref": c.statement_ref}
        for c in registry.checks()
    ]
    if args.json:
        _print_json({"papers": listed, "checks": checks, "benchmarks": benchmark_names()})
        return EXIT_OK
    print("Papers:")
    for p in listed:
        print(f"  {p['key']:26s} [{p['status']}] {p['title']} ({p['venue']}, arXiv {p['arxiv']})")
        for f in p["figures"]:
            times = ", ".join(
                f"{s} {_seconds_text(v)}" for s, v in f["measured_seconds"].items() if v is not None
            )
            measured = f"  measured: {times}" if times else ""
            print(f"      {f['name']:28s} {f['paper_ref']:22s} scales: {','.join(f['scales'])}{measured}")
    print("Checks:")
    for c in checks:
        print(f"  {c['name']:34s} {c['paper']:14s} {c['statement_ref']}")
    print("Benchmarks:")
    for op in benchmark_names():
        print(f"  {op}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------------------------------------
def _type_name(hint: Any) -> str:
    base, _ = _strip_annotated(hint)
    if _is_union(base):
        return " | ".join(_type_name(a) for a in typing.get_args(base))
    if typing.get_origin(base) is tuple:
        args = typing.get_args(base)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"tuple[{_type_name(args[0])}, ...]"
        return "tuple[" + ", ".join(_type_name(a) for a in args) + "]"
    if base is type(None):
        return "None"
    return getattr(base, "__name__", str(base).replace("typing.", ""))


def _range_text(hint: Any) -> str:
    """The declared range of a field's annotation, in words ('' when none is declared)."""
    if _is_union(hint):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        texts = [t for t in (_range_text(a) for a in options) if t]
        if not texts:
            return ""
        return " or ".join(texts) + (" (or None)" if type(None) in typing.get_args(hint) else "")
    base, declared = _strip_annotated(hint)
    if declared is None and _is_union(base):
        return _range_text(base)
    if declared is None and typing.get_origin(base) is tuple:
        args = [a for a in typing.get_args(base) if a is not Ellipsis]
        texts = [_range_text(a) for a in args]
        if len(set(texts)) == 1 and texts[0]:
            return f"each: {texts[0]}"
        return "; ".join(f"element {i}: {t}" for i, t in enumerate(texts) if t)
    if declared is None:
        return "true or false" if base is bool else ""
    return declared.describe(int if base is int else float if base is float else base)


def _docstring_help(cls: type, name: str) -> str:
    """A line of the dataclass docstring that documents `name` ("name: meaning", "`name` - meaning")."""
    pattern = re.compile(rf"^\s*[`*]*{re.escape(name)}[`*]*\s*(?::|-|—|=)\s*(.+)$")
    for line in (inspect.getdoc(cls) or "").splitlines():
        match = pattern.match(line)
        if match:
            return match.group(1).strip()
    return ""


def _source_comments(cls: type) -> dict[str, str]:
    """name -> the trailing comment of its declaration in the class body (`name: type = value  # ...`),
    read from the module's source with `inspect`; {} when the source is not available."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # a subclass's comment replaces its base's
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
            tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
        except (OSError, TypeError, tokenize.TokenError, IndentationError, SyntaxError):
            continue
        depth, line, notes = 0, [], []
        for tok in tokens:
            if tok.type == tokenize.INDENT:
                depth += 1
            elif tok.type == tokenize.DEDENT:
                depth -= 1
            elif tok.type == tokenize.COMMENT:
                notes.append(tok.string.lstrip("#").strip())
            elif tok.type == tokenize.NL:
                if not line:  # a comment on a line of its own belongs to no declaration
                    notes = []
            elif tok.type == tokenize.NEWLINE:
                declares = len(line) >= 2 and line[0].type == tokenize.NAME and line[1].string == ":"
                if depth == 1 and declares and notes:
                    comments[line[0].string] = " ".join(notes)
                line, notes = [], []
            else:
                line.append(tok)
    return comments


def describe_config(config: Any, prefix: str = "") -> list[dict[str, Any]]:
    """One row per field (nested dataclasses dotted): name, value, type, declared range, meaning.

    The meaning is the field's `field(metadata={"help": ...})`, else the line of the dataclass docstring
    that names it, else the trailing comment of its declaration in the source, else ''."""
    cls = type(config)
    hints = typing.get_type_hints(cls, include_extras=True)
    comments = _source_comments(cls)
    rows: list[dict[str, Any]] = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            rows += describe_config(value, prefix=f"{prefix}{f.name}.")
            continue
        hint = hints.get(f.name, type(value))
        meaning = str(f.metadata.get("help", "")) or _docstring_help(cls, f.name) or comments.get(f.name, "")
        rows.append(
            {
                "name": prefix + f.name,
                "value": value,
                "type": _type_name(hint),
                "range": _range_text(hint),
                "meaning": meaning,
            }
        )
    return rows


def cmd_config(args: argparse.Namespace) -> int:
    from common import registry

    scale = parse_scale(args.scale)
    paper = _implemented(registry.paper(args.paper))
    fig = paper.figure(args.figure)
    config = fig.config_for(scale, args.seed, args.overrides)
    rows = describe_config(config)
    digest = run_hash(fig, config, args.device)
    if args.json:
        _print_json(
            {
                "paper": paper.key,
                "figure": fig.name,
                "scale": scale.value,
                "device": args.device,
                "config_type": type(config).__qualname__,
                "config_hash": digest,
                "fields": rows,
            }
        )
        return EXIT_OK
    print(f"{paper.key}/{fig.name} [{scale.value}] {type(config).__qualname__}, config hash {digest}")
    table = [("name", "value", "type", "range", "meaning")] + [
        (r["name"], _short(repr(r["value"])), r["type"], r["range"], r["meaning"]) for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        print(
            "  " + "  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
        )
    return EXIT_OK


def _short(text: str, limit: int = 48) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _implemented(paper: Paper) -> Paper:
    if paper.status != "implemented":
        raise ConfigError(f"paper {paper.key!r} is planned but has no code yet")
    return paper


# ---------------------------------------------------------------------------------------------------------
# reproduce
# ---------------------------------------------------------------------------------------------------------
def plan_figure(
    paper: Paper,
    figure: Figure,
    scale: Scale,
    *,
    results: Path = DEFAULT_RESULTS,
    seed: int | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    device: str = "cpu",
    force: bool = False,
) -> dict[str, Any]:
    """What `run_figure` with the same arguments would do, without doing it: the resolved config's hash,
    whether it would skip the figure (complete and intact for this config, no --force) and why, and the
    seconds the last completed run at this scale took (None: unknown)."""
    config = figure.config_for(scale, seed, overrides)
    state = run_state(paper, figure, scale, config, results=results, device=device)
    digest, out_dir, done = state.digest, state.out_dir, state.done
    skip = state.complete and not force
    if skip:
        why = "complete and intact for this config"
    elif state.complete:
        why = "complete, but --force reruns it"
    elif state.problem is not None:
        why = f"its results do not verify: {state.problem}"
    elif done is not None:
        why = f"the complete results are for another config (hash {done.get('config_hash')})"
    else:
        why = "no complete results"
    return {
        "paper": paper.key,
        "figure": figure.name,
        "scale": Scale(scale).value,
        "device": device,
        "config_hash": digest,
        "out_dir": str(out_dir),
        "would_skip": skip,
        "reason": why,
        "estimated_seconds": recorded_seconds(results, paper.key, scale, figure.name),
    }


def cmd_reproduce(args: argparse.Namespace) -> int:
    from common import registry

    scale = parse_scale(args.scale)
    if args.device.startswith("cuda") and not args.dry_run:
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
    elif args.device not in DEVICES:
        raise ConfigError(f"unknown device {args.device!r}; valid devices: {', '.join(DEVICES)}")
    if args.paper == "all":
        selected = [p for p in registry.papers() if p.status == "implemented"]
        if args.figure:
            raise ConfigError("--figure needs a single paper, not 'all'")
    else:
        selected = [_implemented(registry.paper(args.paper))]

    plan = []  # validate every figure and override before running anything
    for paper in selected:
        figures = [paper.figure(name) for name in args.figure] if args.figure else paper.figures()
        for fig in figures:
            fig.config_for(scale, args.seed, args.overrides)
            plan.append((paper, fig))

    if args.dry_run:
        return _dry_run(args, scale, plan)

    say = print if is_writer() and not args.json else _quiet  # under torchrun only rank 0 reports
    failed = 0
    records = []
    with _stdout_to_stderr(args.json):
        for paper, fig in plan:
            start = time.perf_counter()
            say(f"== {paper.key}/{fig.name} [{scale.value}] {fig.title}", flush=True)
            result = run_figure(
                paper,
                fig,
                scale,
                results=args.out,
                seed=args.seed,
                overrides=args.overrides,
                device=args.device,
                force=args.force,
                show_progress=not args.no_progress and not args.json,
            )
            wall = time.perf_counter() - start
            state = "skipped (complete; --force reruns)" if result.skipped else f"{wall:.1f}s"
            say(f"   {state} -> {result.out_dir}")
            for claim in result.claims:
                say("   " + claim.line())
            failed += sum(not c.passed for c in result.claims)
            records.append(
                {
                    "paper": paper.key,
                    "figure": fig.name,
                    "scale": scale.value,
                    "config_hash": result.config_hash,
                    "out_dir": str(result.out_dir),
                    "skipped": result.skipped,
                    "seconds": round(wall, 2),
                    "claims": _claim_records(result.claims),
                }
            )
    say(f"claims failed: {failed}")
    code = EXIT_CLAIM_FAILED if failed else EXIT_OK
    if args.json and is_writer():
        _print_json(
            {
                "command": "reproduce",
                "scale": scale.value,
                "device": args.device,
                "figures": records,
                "claims_failed": failed,
                "exit_code": code,
            }
        )
    return code


def _dry_run(args: argparse.Namespace, scale: Scale, plan: list[tuple[Paper, Figure]]) -> int:
    steps = [
        plan_figure(
            paper,
            fig,
            scale,
            results=args.out,
            seed=args.seed,
            overrides=args.overrides,
            device=args.device,
            force=args.force,
        )
        for paper, fig in plan
    ]
    to_run = [s for s in steps if not s["would_skip"]]
    known = [s["estimated_seconds"] for s in to_run if s["estimated_seconds"] is not None]
    unknown = len(to_run) - len(known)
    if args.json:
        _print_json(
            {
                "command": "reproduce",
                "dry_run": True,
                "scale": scale.value,
                "device": args.device,
                "plan": steps,
                "would_run": len(to_run),
                "estimated_seconds": sum(known) if not unknown else None,
            }
        )
        return EXIT_OK
    print(f"plan (dry run: nothing is run or written), scale {scale.value}, device {args.device}:")
    for s in steps:
        verdict = "would skip" if s["would_skip"] else "would run"
        print(
            f"  {s['paper']}/{s['figure']} config {s['config_hash']}: {verdict} ({s['reason']}); "
            f"estimated {_seconds_text(s['estimated_seconds'])}"
        )
    total = _seconds_text(sum(known)) if known else "unknown"
    tail = f" + {unknown} unknown" if unknown and known else ""
    print(f"would run {len(to_run)} of {len(steps)} figures; estimated {total}{tail}")
    return EXIT_OK


def _quiet(*args: object, **kwargs: object) -> None:
    """print() for ranks other than 0, and for --json."""


# ---------------------------------------------------------------------------------------------------------
# verify, bench, report
# ---------------------------------------------------------------------------------------------------------
def cmd_verify(args: argparse.Namespace) -> int:
    from common import registry

    every = registry.checks()
    if args.check == "all":
        selected = every
    else:
        selected = [c for c in every if args.check in (c.name, c.paper)]
        if not selected:
            registry.check(args.check)  # raises with the valid names
    say = _quiet if args.json else print
    failed = 0
    records = []
    with _stdout_to_stderr(args.json):
        for check in selected:
            start = time.perf_counter()
            say(f"== {check.name} ({check.paper}: {check.statement_ref})", flush=True)
            claims = run_check(check, args.out)
            seconds = time.perf_counter() - start
            say(f"   {seconds:.1f}s")
            for claim in claims:
                say("   " + claim.line())
            failed += sum(not c.passed for c in claims)
            records.append(
                {
                    "name": check.name,
                    "paper": check.paper,
                    "statement_ref": check.statement_ref,
                    "seconds": round(seconds, 2),
                    "claims": _claim_records(claims),
                }
            )
    from common.report import census_line, theory_census

    census = {k: v for k, v in theory_census().items() if k in {c.paper for c in selected}}
    for paper_key, entry in census.items():
        say(f"census {paper_key}: {census_line(entry)}")
    say(f"claims failed: {failed}")
    code = EXIT_CLAIM_FAILED if failed else EXIT_OK
    if args.json:
        counts = {k: {"covered": v["covered"], "admitting": v["admitting"]} for k, v in census.items()}
        doc = {"command": "verify", "checks": records, "census": counts, "claims_failed": failed}
        _print_json({**doc, "exit_code": code})
    return code


def benchmark_names() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in BENCH_DIR.glob("bench_*.py"))


def cmd_bench(args: argparse.Namespace) -> int:
    from common.atomic import read_json
    from common.report import bench_targets

    names = benchmark_names()
    if args.op != "all" and args.op not in names:
        raise ConfigError(f"unknown benchmark {args.op!r}; valid benchmarks: {', '.join(names) or '(none)'}")
    missed: list[str] = []
    for name in names if args.op == "all" else [args.op]:
        spec = importlib.util.spec_from_file_location(
            f"benchmarks.bench_{name}", BENCH_DIR / f"bench_{name}.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(f"== bench {name}", flush=True)
        returned = module.main(args.out, quick=args.quick, device=args.device)
        written = Path(args.out) / f"{name}.json"
        try:
            record = read_json(written)
        except (OSError, ValueError):
            record = returned if isinstance(returned, dict) else {}
        targets = bench_targets(record)
        for target, met in targets:
            print(f"   target {'met' if met else 'MISSED'}: {target}")
            if not met:
                missed.append(f"{name}: {target}")
        if not targets:
            print("   (no targets stated)")
    if missed:
        print(f"benchmark targets missed: {len(missed)}")
    return EXIT_CLAIM_FAILED if args.strict and missed else EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from common.report import write_report

    html, md, failed = write_report(args.out)
    print(f"wrote {html} and {md}; claims failed: {failed}")
    return EXIT_CLAIM_FAILED if args.strict and failed else EXIT_OK


COMMANDS = {
    "list": cmd_list,
    "config": cmd_config,
    "reproduce": cmd_reproduce,
    "verify": cmd_verify,
    "bench": cmd_bench,
    "report": cmd_report,
}

if __name__ == "__main__":
    sys.exit(main())

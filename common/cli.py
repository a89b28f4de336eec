"""`companion`: list, reproduce, verify, bench, report.

Exit codes: 0 when every claim passed, 1 when a claim failed, 2 for a usage error (unknown paper, figure,
scale, check or config key: one line that lists the valid names).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

from common.configs import ConfigError, parse_scale
from common.experiment import DEFAULT_RESULTS, is_writer, run_check, run_figure

EXIT_OK, EXIT_CLAIM_FAILED, EXIT_USAGE = 0, 1, 2
BENCH_DIR = Path(__file__).resolve().parent.parent / "benchmarks"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="companion", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="papers (implemented and planned), their figures and the theory checks")

    rep = sub.add_parser("reproduce", help="run a paper's figures (or all papers') and measure their claims")
    rep.add_argument("paper", help="paper key, or 'all'")
    rep.add_argument("--figure", action="append", default=None, help="only this figure (repeatable)")
    rep.add_argument("--scale", default="quick", help="quick | default | paper (default: quick)")
    rep.add_argument("--seed", type=int, default=None, help="override the config's seed")
    rep.add_argument("--out", type=Path, default=DEFAULT_RESULTS, help="results directory (default: results)")
    rep.add_argument("--device", default="cpu", help="cpu | cuda")
    rep.add_argument("--force", action="store_true", help="rerun figures whose results are complete")
    rep.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field (must exist; keeps its type); repeatable",
    )
    rep.add_argument("--no-progress", action="store_true", help="no progress bars")

    ver = sub.add_parser("verify", help="run theory checks (proofs_checks/)")
    ver.add_argument("check", nargs="?", default="all", help="check name, paper key, or 'all'")
    ver.add_argument("--out", type=Path, default=DEFAULT_RESULTS)

    ben = sub.add_parser("bench", help="run kernel benchmarks (benchmarks/bench_<op>.py)")
    ben.add_argument("op", nargs="?", default="all", help="op family name, or 'all'")
    ben.add_argument("--out", type=Path, default=DEFAULT_RESULTS / "bench")
    ben.add_argument("--quick", action="store_true", help="small shapes, few repeats")
    ben.add_argument("--device", default="cpu")

    rpt = sub.add_parser("report", help="write results/index.html and results/REPORT.md")
    rpt.add_argument("--out", type=Path, default=DEFAULT_RESULTS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
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


def cmd_list(args: argparse.Namespace) -> int:
    from common import registry

    print("Papers:")
    for paper in registry.papers():
        print(f"  {paper.key:26s} [{paper.status}] {paper.title} ({paper.venue}, arXiv {paper.arxiv})")
        if paper.status == "implemented":
            for fig in paper.figures():
                scales = ",".join(s.value for s in fig.configs)
                print(f"      {fig.name:28s} {fig.paper_ref:22s} scales: {scales}")
    print("Checks:")
    for check in registry.checks():
        print(f"  {check.name:34s} {check.paper:14s} {check.statement_ref}")
    print("Benchmarks:")
    for op in benchmark_names():
        print(f"  {op}")
    return EXIT_OK


def cmd_reproduce(args: argparse.Namespace) -> int:
    from common import registry

    scale = parse_scale(args.scale)
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
    elif args.device != "cpu":
        raise ConfigError(f"unknown device {args.device!r}; valid devices: cpu, cuda")
    if args.paper == "all":
        selected = [p for p in registry.papers() if p.status == "implemented"]
        if args.figure:
            raise ConfigError("--figure needs a single paper, not 'all'")
    else:
        paper = registry.paper(args.paper)
        if paper.status != "implemented":
            raise ConfigError(f"paper {paper.key!r} is planned but has no code yet")
        selected = [paper]

    plan = []  # validate every figure and override before running anything
    for paper in selected:
        figures = [paper.figure(name) for name in args.figure] if args.figure else paper.figures()
        for fig in figures:
            fig.config_for(scale, args.seed, args.overrides)
            plan.append((paper, fig))

    say = print if is_writer() else _quiet  # under torchrun only rank 0 reports
    failed = 0
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
            show_progress=not args.no_progress,
        )
        state = (
            "skipped (complete; --force reruns)" if result.skipped else f"{time.perf_counter() - start:.1f}s"
        )
        say(f"   {state} -> {result.out_dir}")
        for claim in result.claims:
            say("   " + claim.line())
        failed += sum(not c.passed for c in result.claims)
    say(f"claims failed: {failed}")
    return EXIT_CLAIM_FAILED if failed else EXIT_OK


def _quiet(*args: object, **kwargs: object) -> None:
    """print() for ranks other than 0."""


def cmd_verify(args: argparse.Namespace) -> int:
    from common import registry

    every = registry.checks()
    if args.check == "all":
        selected = every
    else:
        selected = [c for c in every if args.check in (c.name, c.paper)]
        if not selected:
            registry.check(args.check)  # raises with the valid names
    failed = 0
    for check in selected:
        start = time.perf_counter()
        print(f"== {check.name} ({check.paper}: {check.statement_ref})", flush=True)
        claims = run_check(check, args.out)
        print(f"   {time.perf_counter() - start:.1f}s")
        for claim in claims:
            print("   " + claim.line())
        failed += sum(not c.passed for c in claims)
    print(f"claims failed: {failed}")
    return EXIT_CLAIM_FAILED if failed else EXIT_OK


def benchmark_names() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in BENCH_DIR.glob("bench_*.py"))


def cmd_bench(args: argparse.Namespace) -> int:
    names = benchmark_names()
    if args.op != "all" and args.op not in names:
        raise ConfigError(f"unknown benchmark {args.op!r}; valid benchmarks: {', '.join(names) or '(none)'}")
    for name in names if args.op == "all" else [args.op]:
        spec = importlib.util.spec_from_file_location(
            f"benchmarks.bench_{name}", BENCH_DIR / f"bench_{name}.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(f"== bench {name}", flush=True)
        module.main(args.out, quick=args.quick, device=args.device)
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from common.report import write_report

    html, md, failed = write_report(args.out)
    print(f"wrote {html} and {md}; claims failed: {failed}")
    return EXIT_OK


COMMANDS = {
    "list": cmd_list,
    "reproduce": cmd_reproduce,
    "verify": cmd_verify,
    "bench": cmd_bench,
    "report": cmd_report,
}

if __name__ == "__main__":
    sys.exit(main())

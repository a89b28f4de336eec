"""How robust is each claim a test asserts at quick scale? Runs every figure that asserts claims at seeds
0..N-1 (and, with --threads, at each listed thread count) and prints, per asserted claim, how many runs
passed and the smallest margin (measured minus threshold, signed so that positive means passing).

    .venv/bin/python tests/quick_claims_over_seeds.py                   # every paper, seeds 0-4
    .venv/bin/python tests/quick_claims_over_seeds.py less --seeds 5 --threads 1,2
    .venv/bin/python tests/quick_claims_over_seeds.py --json results/quick_margins.json

A claim belongs in a figure's `asserted_at_quick` only if it passed at every run here with room to spare:
CPUs of another make choose other BLAS kernels and give other bits, much as another seed does. Each
(seed, threads) run keeps its results under --out, so an interrupted sweep resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common import registry  # noqa: E402
from common.atomic import atomic_write_json  # noqa: E402
from common.configs import Scale  # noqa: E402
from common.experiment import run_figure  # noqa: E402


def margin(claim) -> float:
    """measured - threshold for >= / >, threshold - measured for <= / <: positive when the claim passes."""
    sign = 1.0 if claim.comparison in (">=", ">") else -1.0
    return sign * (claim.measured - claim.threshold)


def sweep(paper_keys: list[str], seeds: int, threads: list[int | None], out: Path) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    for paper in registry.papers(include_planned=False):
        if paper_keys and paper.key not in paper_keys:
            continue
        for fig in paper.figures():
            if not fig.asserted_at_quick:
                continue
            for seed in range(seeds):
                for count in threads:
                    figure = fig if count is None else dataclasses.replace(fig, threads=count)
                    results = out / f"seed{seed}-threads{count or 'declared'}"
                    result = run_figure(
                        paper, figure, Scale.QUICK, results=results, seed=seed, show_progress=False
                    )
                    measured = {c.id: c for c in result.claims}
                    for claim_id in fig.asserted_at_quick:
                        claim = measured[claim_id]
                        row = rows.setdefault(claim_id, {"runs": 0, "passed": 0, "margins": []})
                        row["runs"] += 1
                        row["passed"] += int(claim.passed)
                        row["margins"].append(round(margin(claim), 6))
                        row["threshold"] = f"{claim.comparison} {claim.threshold:g}"
                    print(
                        f"{paper.key}/{fig.name} seed {seed} threads {count or 'declared'}: done", flush=True
                    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("papers", nargs="*", help="paper keys (default: every implemented paper)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--threads", default="", help="comma-separated thread counts (default: declared)")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "_quick_over_seeds")
    parser.add_argument("--json", type=Path, default=None, help="also write the table as JSON")
    args = parser.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",") if t] or [None]
    rows = sweep(args.papers, args.seeds, threads, args.out)
    failed = 0
    print(f"\n{'claim':58s} {'passed':>8s} {'min margin':>11s}  threshold")
    for claim_id, row in sorted(rows.items()):
        failed += row["runs"] - row["passed"]
        passed = f"{row['passed']:>3d}/{row['runs']:<4d}"
        print(f"{claim_id:58s} {passed} {min(row['margins']):>11.4g}  {row['threshold']}")
    if args.json:
        atomic_write_json(args.json, rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

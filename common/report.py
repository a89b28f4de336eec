"""results/index.html and results/REPORT.md: every figure beside its claims (green or red), every theory
check, every benchmark; planned papers are listed as planned.

The report only reads completed results (`done.json`, `checks/*.json`, `bench/*.json`): it never reruns
anything. Each scale keeps its own results (`results/<paper>/<scale>/<figure>/`); for every figure the report
shows the newest complete scale and says which one (and which other scales are complete). A figure whose
run was interrupted shows as "not run / incomplete"; one whose files no longer match the SHA-256s in its
`done.json` is named, with the file, instead of being shown.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from common.atomic import atomic_write_text, read_json
from common.claims import Claim
from common.configs import Scale
from common.experiment import Paper, figure_dir, verified_done
from common.registry import papers

CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:0} .sub{color:#666;margin-top:.2em}
table{border-collapse:collapse;width:100%;margin:.5em 0 1.5em;font-size:.9em}
td,th{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
tr.pass td.mark{background:#d9f2d9;color:#145214;font-weight:bold}
tr.fail td.mark{background:#f7d4d4;color:#7a1010;font-weight:bold}
img{max-width:100%;border:1px solid #eee} .planned{color:#888} code{background:#f4f4f4;padding:0 3px}
.fig{margin:1em 0 2em} .meta{color:#555;font-size:.9em} .broken{color:#7a1010}
"""


def _claims(records: list[dict[str, Any]]) -> list[Claim]:
    return [Claim.from_dict(r) for r in records]


def _claims_html(claims: list[Claim]) -> str:
    rows = ["<tr><th></th><th>claim</th><th>measured</th><th>test</th><th>paper</th></tr>"]
    for c in claims:
        cls, mark = ("pass", "PASS") if c.passed else ("fail", "FAIL")
        detail = f"<br><span class=meta>{html.escape(c.details)}</span>" if c.details else ""
        rows.append(
            f"<tr class={cls}><td class=mark>{mark}</td><td><code>{html.escape(c.id)}</code> "
            f"{html.escape(c.statement)}{detail}</td><td>{c.measured:.4g}</td>"
            f"<td>{html.escape(c.comparison)} {c.threshold:.4g}</td>"
            f"<td>{html.escape(c.paper_value)}</td></tr>"
        )
    return "<table>" + "".join(rows) + "</table>"


def _claims_md(claims: list[Claim]) -> list[str]:
    lines = ["| | claim | measured | test | paper |", "|---|---|---|---|---|"]
    for c in claims:
        mark = "PASS" if c.passed else "**FAIL**"
        statement = c.statement.replace("|", "\\|")
        lines.append(
            f"| {mark} | `{c.id}` {statement} | {c.measured:.4g} | {c.comparison} {c.threshold:.4g} "
            f"| {c.paper_value.replace('|', '/')} |"
        )
    return lines


def newest_complete(
    results: Path, paper: str, figure: str
) -> tuple[dict[str, Any] | None, Path | None, list[str], list[str]]:
    """(done record, directory) of the most recently completed scale of a figure, the other complete
    scales, and one line per scale whose files do not verify."""
    complete: list[tuple[str, dict[str, Any], Path]] = []
    broken: list[str] = []
    for scale in Scale:
        out_dir = figure_dir(results, paper, scale, figure)
        done, problem = verified_done(out_dir)
        if problem is not None:
            broken.append(f"{scale.value}: {problem}")
        elif done is not None:
            complete.append((done.get("finished", ""), done, out_dir))
    if not complete:
        return None, None, [], broken
    complete.sort(key=lambda item: item[0])
    _, done, out_dir = complete[-1]
    others = [d["scale"] for _, d, _ in complete[:-1]]
    return done, out_dir, others, broken


def write_report(results: Path, listed: list[Paper] | None = None) -> tuple[Path, Path, int]:
    """Write both report files (for `listed` papers, default every registered one); returns their paths
    and the number of failed claims."""
    results = Path(results)
    body: list[str] = []
    md: list[str] = ["# paper-companion results", ""]
    total = failed = 0

    for paper in papers() if listed is None else listed:
        head = f"{paper.title} ({paper.authors}; {paper.venue}, arXiv {paper.arxiv})"
        if paper.status != "implemented":
            body.append(
                f"<h2 class=planned>{html.escape(paper.key)}: planned</h2>"
                f"<p class=planned>{html.escape(head)}</p>"
            )
            md += [f"## {paper.key}: planned", "", head, ""]
            continue
        body.append(f"<h2 id={paper.key}>{html.escape(paper.key)}</h2><p class=sub>{html.escape(head)}</p>")
        md += [f"## {paper.key}", "", head, ""]
        for fig in paper.figures():
            done, out_dir, others, broken = newest_complete(results, paper.key, fig.name)
            body.append(
                f"<div class=fig><h3>{html.escape(fig.title)}</h3>"
                f"<p class=meta>{html.escape(fig.paper_ref)} · <code>{html.escape(fig.name)}</code>"
            )
            md += [f"### {fig.title}", "", f"{fig.paper_ref} · `{fig.name}`", ""]
            for line in broken:
                body.append(f"<p class=broken>not shown, files do not match: {html.escape(line)}</p>")
                md += [f"**Not shown, files do not match:** {line}", ""]
            if done is None:
                body.append(" · not run or incomplete</p></div>")
                md += ["Not run or incomplete.", ""]
                continue
            also = f" (also complete: {', '.join(others)})" if others else ""
            body.append(
                f" · showing scale <b>{html.escape(done['scale'])}</b>, the newest complete{also}"
                f" · {done['seconds']} s</p>"
            )
            md += [f"Showing scale **{done['scale']}**, the newest complete{also}; {done['seconds']} s.", ""]
            if done.get("expected"):
                body.append(f"<p>{html.escape(done['expected'])}</p>")
            rel = out_dir.relative_to(results)
            for name in done["files"]:
                if name.endswith(".png"):
                    body.append(f"<img src='{rel.as_posix()}/{name}' alt='{html.escape(name)}'>")
                    md.append(f"![{name}]({rel.as_posix()}/{name})")
            claims = _claims(done["claims"])
            body.append(_claims_html(claims) + "</div>")
            md += ["", *_claims_md(claims), ""]
            total += len(claims)
            failed += sum(not c.passed for c in claims)

    checks_dir = results / "checks"
    check_files = sorted(checks_dir.glob("*.json")) if checks_dir.exists() else []
    body.append("<h2 id=checks>Theory checks</h2>")
    md += ["## Theory checks", ""]
    if not check_files:
        body.append("<p>None run yet (<code>companion verify all</code>).</p>")
        md += ["None run yet.", ""]
    for path in check_files:
        try:
            record = read_json(path)
            claims = _claims(record["claims"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            body.append(f"<p class=broken>not shown, unreadable: {html.escape(str(path))} ({err})</p>")
            md += [f"**Not shown, unreadable:** `{path}` ({err})", ""]
            continue
        body.append(
            f"<h3>{html.escape(record['title'])}</h3><p class=meta>{html.escape(record['paper'])}: "
            f"{html.escape(record['statement_ref'])} · {record['seconds']} s</p>" + _claims_html(claims)
        )
        md += [
            f"### {record['title']}",
            "",
            f"{record['paper']}: {record['statement_ref']}",
            "",
            *_claims_md(claims),
            "",
        ]
        total += len(claims)
        failed += sum(not c.passed for c in claims)

    bench_dir = results / "bench"
    bench_files = sorted(bench_dir.glob("*.json")) if bench_dir.exists() else []
    if bench_files:
        body.append("<h2 id=bench>Benchmarks</h2>")
        md += ["## Benchmarks", ""]
        for path in bench_files:
            png = path.with_suffix(".png")
            body.append(f"<h3>{html.escape(path.stem)}</h3><p><code>{path.relative_to(results)}</code></p>")
            md += [f"### {path.stem}", "", f"`{path.relative_to(results)}`", ""]
            if png.exists():
                body.append(f"<img src='{png.relative_to(results).as_posix()}'>")
                md += [f"![{path.stem}]({png.relative_to(results).as_posix()})", ""]

    summary = f"{total - failed} of {total} claims passed"
    page = (
        f"<!doctype html><html><head><meta charset=utf-8><title>paper-companion results</title>"
        f"<style>{CSS}</style></head><body><h1>paper-companion results</h1>"
        f"<p class=sub>{summary}</p>{''.join(body)}</body></html>\n"
    )
    md.insert(2, summary + "\n")
    html_path = atomic_write_text(results / "index.html", page)
    md_path = atomic_write_text(results / "REPORT.md", "\n".join(md) + "\n")
    return html_path, md_path, failed

"""results/index.html and results/REPORT.md: a summary table, then every figure beside its claims (green,
red, or amber when unresolved), every theory check, every benchmark; planned papers are listed as planned.

The report only reads completed results (`done.json`, `checks/*.json`, `bench/*.json`): it never reruns
anything. Each scale keeps its own results (`results/<paper>/<scale>/<figure>/`); for every figure the report
shows the newest complete scale and says which one (and which other scales are complete). A figure whose
run was interrupted shows as "not run / incomplete"; one whose files no longer match the SHA-256s in its
`done.json` is named, with the file, instead of being shown.

Layout (both files carry the same content):

- the headline "N of M claims reproduced" (claims of kind "claim" only), then the sanity checks and the
  theory checks;
- a summary table, one row per paper: claims reproduced / not reproduced / unresolved, sanity checks passed,
  theory checks passed (`results/checks/*.json` of that paper), the scale shown, minutes of compute (the
  seconds in the shown figures' `done.json`), a link to the paper's section;
- per paper: links to its arXiv page, its README and its claims files; `paper_vs_ours.png` (written here,
  into `results/<paper>/`) when a claim carries `paper_number`; per figure its plots, links to its data
  files, its config and environment folded (git sha, torch, device, threads, CPU), a claims table and
  apart from it a sanity-check table;
- the theory checks and the benchmarks (with the targets their JSON states, see `bench_targets`).
"""

from __future__ import annotations

import html
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from common.atomic import atomic_write_text, read_json
from common.claims import Claim
from common.configs import Scale
from common.env_info import REPO_ROOT
from common.experiment import Paper, figure_dir, verified_done
from common.registry import papers

PAPER_VS_OURS = "paper_vs_ours"

CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:0} .sub{color:#666;margin-top:.2em} .headline{font-size:1.1em}
table{border-collapse:collapse;width:100%;margin:.5em 0 1.5em;font-size:.9em}
td,th{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
table.summary td.n{text-align:right} td.bad{color:#7a1010;font-weight:bold} td.amber{color:#7a5a00}
tr.pass td.mark{background:#d9f2d9;color:#145214;font-weight:bold}
tr.fail td.mark{background:#f7d4d4;color:#7a1010;font-weight:bold}
tr.unresolved td.mark{background:#fbeec2;color:#7a5a00;font-weight:bold}
img{max-width:100%;border:1px solid #eee} .planned{color:#888} code{background:#f4f4f4;padding:0 3px}
.fig{margin:1em 0 2em} .meta{color:#555;font-size:.9em} .broken{color:#7a1010}
details{margin:.3em 0 .8em} summary{cursor:pointer;color:#444}
pre{background:#f7f7f7;padding:.5em;overflow:auto} h4{margin:.8em 0 .2em}
"""

MARKS = {"pass": "PASS", "fail": "FAIL", "unresolved": "UNRESOLVED"}


def _claims(records: list[dict[str, Any]]) -> list[Claim]:
    return [Claim.from_dict(r) for r in records]


def _num(x: float) -> str:
    return f"{x:.4g}"


def _measured(c: Claim) -> str:
    text = _num(c.measured)
    if c.interval is not None:
        text += f" [{_num(c.interval[0])}, {_num(c.interval[1])}]"
    return text


def _seeds(c: Claim) -> str:
    if not c.per_seed:
        return ""
    shown = ", ".join(_num(v) for v in c.per_seed[:10])
    more = f", ... ({len(c.per_seed)} seeds)" if len(c.per_seed) > 10 else ""
    return f"per seed: {shown}{more}"


def _with_unit(x: float, unit: str) -> str:
    if not unit:
        return _num(x)
    return f"{_num(x)}{unit}" if unit in ("%", "x", "×") else f"{_num(x)} {unit}"


def _paper(c: Claim) -> str:
    """The paper's value: number with unit and source when given, else the free text."""
    if c.paper_number is None:
        return c.paper_value
    source = f" ({c.paper_source})" if c.paper_source else ""
    return _with_unit(c.paper_number, c.paper_unit) + source


def _claims_html(claims: list[Claim], title: str = "") -> str:
    if not claims:
        return ""
    rows = [
        "<tr><th></th><th>claim</th><th>measured</th><th>test</th><th>paper</th><th>kind</th>"
        "<th>details</th></tr>"
    ]
    for c in claims:
        state = c.state
        seeds = f"<br><span class=meta>{html.escape(_seeds(c))}</span>" if c.per_seed else ""
        hover = f" title='{html.escape(c.paper_value, quote=True)}'" if c.paper_number is not None else ""
        rows.append(
            f"<tr class={state}><td class=mark>{MARKS[state]}</td><td><code>{html.escape(c.id)}</code> "
            f"{html.escape(c.statement)}</td><td>{html.escape(_measured(c))}{seeds}</td>"
            f"<td>{html.escape(c.comparison)} {_num(c.threshold)}</td>"
            f"<td{hover}>{html.escape(_paper(c))}</td><td>{html.escape(c.kind)}</td>"
            f"<td class=meta>{html.escape(c.details)}</td></tr>"
        )
    head = f"<h4>{html.escape(title)}</h4>" if title else ""
    return head + "<table class=claims>" + "".join(rows) + "</table>"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _claims_md(claims: list[Claim], title: str = "") -> list[str]:
    if not claims:
        return []
    lines = [f"**{title}**", ""] if title else []
    lines += ["| | claim | measured | test | paper | kind | details |", "|---|---|---|---|---|---|---|"]
    for c in claims:
        state = c.state
        mark = MARKS[state] if state == "pass" else f"**{MARKS[state]}**"
        measured = _measured(c) + (f"<br>{_seeds(c)}" if c.per_seed else "")
        lines.append(
            f"| {mark} | `{c.id}` {_md_cell(c.statement)} | {_md_cell(measured)} | "
            f"{c.comparison} {_num(c.threshold)} | {_md_cell(_paper(c))} | {c.kind} | {_md_cell(c.details)} |"
        )
    return [*lines, ""]


def _split(claims: list[Claim]) -> tuple[list[Claim], list[Claim]]:
    return [c for c in claims if c.kind != "sanity"], [c for c in claims if c.kind == "sanity"]


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


def bench_targets(record: Any, path: str = "") -> list[tuple[str, bool]]:
    """(name, met) of every target a benchmark's JSON states, at any depth (a nested target's name is
    prefixed with the keys above it). Recognised forms:

    - `"targets": [{"name": ..., "met": true}, ...]` (the documented form for new benchmarks);
    - `"targets": {name: {"met" or "passed": bool, ...}}` or `{name: bool}`;
    - `"targets_met": {name: bool}`.

    Entries without a boolean verdict are not targets and are skipped."""
    found: list[tuple[str, bool]] = []
    if isinstance(record, list):
        for i, item in enumerate(record):
            found += bench_targets(item, f"{path}[{i}]")
        return found
    if not isinstance(record, dict):
        return found
    for key, value in record.items():
        here = f"{path}.{key}" if path else str(key)
        prefix = f"{path}: " if path else ""
        if key in ("targets", "targets_met"):
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, dict) and isinstance(item.get("met"), bool):
                        found.append((prefix + str(item.get("name", "?")), item["met"]))
                continue
            if isinstance(value, dict):
                for name, verdict in value.items():
                    if isinstance(verdict, bool):
                        found.append((prefix + str(name), verdict))
                    elif isinstance(verdict, dict):
                        met = verdict.get("met", verdict.get("passed"))
                        if isinstance(met, bool):
                            found.append((prefix + str(name), met))
                continue
        found += bench_targets(value, here)
    return found


def theory_census() -> dict[str, dict[str, Any]]:
    """Per paper key, the census of `RESULTS` in proofs_checks/*.py (the paper's results that admit a finite
    check, each naming its covering checks or why none): {"results": [...], "covered": n, "admitting": m}."""
    import importlib
    import pkgutil

    import proofs_checks

    out: dict[str, dict[str, Any]] = {}
    for info in sorted(pkgutil.iter_modules(proofs_checks.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"proofs_checks.{info.name}")
        if hasattr(module, "RESULTS"):
            out.setdefault(module.PAPER, {"results": []})["results"] += list(module.RESULTS)
    for entry in out.values():
        entry["admitting"] = len(entry["results"])
        entry["covered"] = sum(1 for r in entry["results"] if r["checks"])
    return out


def census_line(entry: dict[str, Any] | None) -> str:
    """The census as one line: results checked, results that admit a check, those not covered."""
    if entry is None:
        return "no census of the paper's results yet"
    missing = [r["id"] for r in entry["results"] if not r["checks"]]
    tail = f" (not covered: {', '.join(missing)})" if missing else ""
    return f"results checked: {entry['covered']} of {entry['admitting']} that admit a check{tail}"


def _load_checks(results: Path) -> tuple[list[tuple[Path, dict[str, Any] | None, str]], dict[str, list]]:
    """Every results/checks/*.json as (path, record or None, why unreadable), and the readable ones by
    paper key."""
    checks_dir = results / "checks"
    loaded: list[tuple[Path, dict[str, Any] | None, str]] = []
    by_paper: dict[str, list] = {}
    for path in sorted(checks_dir.glob("*.json")) if checks_dir.exists() else []:
        try:
            record = read_json(path)
            record["_claims"] = _claims(record["claims"])
            by_paper.setdefault(record["paper"], []).append(record)
            loaded.append((path, record, ""))
        except (OSError, ValueError, KeyError, TypeError) as err:
            loaded.append((path, None, str(err)))
    return loaded, by_paper


def _read_optional_json(path: Path) -> dict[str, Any] | None:
    try:
        value = read_json(path)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _env_line(env: dict[str, Any] | None) -> str:
    if env is None:
        return "environment not recorded"
    get = lambda k: env.get(k) if env.get(k) not in (None, "") else "not recorded"  # noqa: E731
    device = get("device") + (f" ({env['cuda_device']})" if env.get("cuda_device") else "")
    return (
        f"git {get('git_sha')} · torch {get('torch')} · device {device} · threads {get('torch_threads')} · "
        f"CPU {get('cpu_model')}"
    )


def _rel_link(target: Path, results: Path) -> str:
    """`target` relative to the results directory (where index.html and REPORT.md live)."""
    return Path(os.path.relpath(target, results.resolve())).as_posix()


def _scale_shown(scales: list[str]) -> str:
    if not scales:
        return "not run"
    counts = Counter(scales)
    if len(counts) == 1:
        return scales[0]
    return ", ".join(f"{s} ({n})" for s, n in sorted(counts.items()))


def plot_paper_vs_ours(rows: list[tuple[str, Claim]], out_dir: Path) -> list[str]:
    """One marker per claim with a `paper_number`: the paper's value (x) against ours (y, with its interval),
    colored by state, the diagonal dashed; written as `<out_dir>/paper_vs_ours.png|pdf`."""
    from common.plotting import new_figure, save

    colors = {"pass": "#2ca02c", "fail": "#d62728", "unresolved": "#ff7f0e"}
    fig, (ax,) = new_figure(width=5.2, height=4.0)
    xs, ys = [], []
    for _figure, c in rows:
        x, y = c.paper_number, c.measured
        err = None
        if c.interval is not None:
            err = [[max(y - c.interval[0], 0.0)], [max(c.interval[1] - y, 0.0)]]
        ax.errorbar([x], [y], yerr=err, fmt="o", color=colors[c.state], markersize=5, capsize=3)
        unit = f" ({c.paper_unit})" if c.paper_unit else ""
        ax.annotate(f"{c.id}{unit}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=6)
        xs.append(x)
        ys.append(y)
    finite = [v for v in xs + ys if v == v and abs(v) != float("inf")]
    if finite:
        low, high = min(finite), max(finite)
        pad = 0.05 * (high - low or abs(high) or 1.0)
        ax.plot([low - pad, high + pad], [low - pad, high + pad], "--", color="#7f7f7f", linewidth=0.8)
    for state, color in colors.items():
        ax.plot([], [], "o", color=color, label=MARKS[state].lower())
    ax.legend(loc="best", fontsize=7)
    ax.set_xlabel("paper's value")
    ax.set_ylabel("ours (measured, with interval)")
    ax.set_title("paper vs ours, one marker per claim")
    return save(fig, out_dir, PAPER_VS_OURS)


def write_report(results: Path, listed: list[Paper] | None = None) -> tuple[Path, Path, int]:
    """Write both report files (for `listed` papers, default every registered one); returns their paths
    and the number of failed claims (every kind, theory checks included; a claim counts as failed when its
    point estimate fails, also when its interval leaves it unresolved)."""
    results = Path(results)
    body: list[str] = []
    md: list[str] = []
    failed = 0
    summary_rows: list[dict[str, Any]] = []
    check_files, checks_by_paper = _load_checks(results)

    for paper in papers() if listed is None else listed:
        head = f"{paper.title} ({paper.authors}; {paper.venue}, arXiv {paper.arxiv})"
        if paper.status != "implemented":
            summary_rows.append({"key": paper.key, "planned": True})
            body.append(
                f"<h2 class=planned id={paper.key}>{html.escape(paper.key)}: planned</h2>"
                f"<p class=planned>{html.escape(head)}</p>"
            )
            md += [f'<a id="{paper.key}"></a>', "", f"## {paper.key}: planned", "", head, ""]
            continue
        section, section_md, row = _paper_section(results, paper, head, checks_by_paper.get(paper.key, []))
        body += section
        md += section_md
        summary_rows.append(row)
        failed += row["failed"]

    body.append("<h2 id=checks>Theory checks</h2>")
    md += ["## Theory checks", ""]
    if not check_files:
        body.append("<p>None run yet (<code>companion verify all</code>).</p>")
        md += ["None run yet.", ""]
    census = theory_census()
    shown_paper = None
    # unreadable files first, then the checks grouped by paper (stable: file order within a paper)
    for path, record, why in sorted(check_files, key=lambda f: (f[1] is not None, f[1] and f[1]["paper"])):
        if record is None:
            body.append(f"<p class=broken>not shown, unreadable: {html.escape(str(path))} ({why})</p>")
            md += [f"**Not shown, unreadable:** `{path}` ({why})", ""]
            continue
        if record["paper"] != shown_paper:
            shown_paper = record["paper"]
            line = census_line(census.get(shown_paper))
            body.append(f"<h3>{html.escape(shown_paper)}</h3><p class=meta>{html.escape(line)}</p>")
            md += [f"### {shown_paper}", "", line, ""]
        claims = record["_claims"]
        body.append(
            f"<h4>{html.escape(record['title'])}</h4><p class=meta>{html.escape(record['paper'])}: "
            f"{html.escape(record['statement_ref'])} · {record['seconds']} s</p>" + _claims_html(claims)
        )
        md += [
            f"#### {record['title']}",
            "",
            f"{record['paper']}: {record['statement_ref']}",
            "",
            *_claims_md(claims),
        ]
        failed += sum(not c.passed for c in claims)

    bench_body, bench_md = _bench_section(results)
    body += bench_body
    md += bench_md

    totals = Counter()
    for row in summary_rows:
        if not row.get("planned"):
            totals.update({k: v for k, v in row.items() if isinstance(v, int | float) and k != "failed"})
    n_checks = len(check_files)
    checks_ok = sum(
        1 for _, r, _ in check_files if r is not None and r["_claims"] and all(c.passed for c in r["_claims"])
    )
    n_claims = totals["reproduced"] + totals["not_reproduced"] + totals["unresolved"]
    headline = f"{totals['reproduced']} of {n_claims} claims reproduced"
    extra = (
        f"{totals['unresolved']} unresolved, {totals['not_reproduced']} not reproduced; "
        f"sanity checks {totals['sanity_passed']} of {totals['sanity']} passed; "
        f"theory checks {checks_ok} of {n_checks} passed"
    )
    summary_html, summary_md = _summary_table(summary_rows)
    page = (
        f"<!doctype html><html><head><meta charset=utf-8><title>paper-companion results</title>"
        f"<style>{CSS}</style></head><body><h1>paper-companion results</h1>"
        f"<p class='sub headline'><b>{headline}</b> ({extra})</p>{summary_html}{''.join(body)}"
        "</body></html>\n"
    )
    md = ["# paper-companion results", "", f"**{headline}** ({extra})", "", *summary_md, *md]
    html_path = atomic_write_text(results / "index.html", page)
    md_path = atomic_write_text(results / "REPORT.md", "\n".join(md) + "\n")
    return html_path, md_path, failed


def _summary_table(rows: list[dict[str, Any]]) -> tuple[str, list[str]]:
    head = [
        "paper",
        "claims reproduced",
        "not reproduced",
        "unresolved",
        "sanity checks passed",
        "theory checks passed",
        "scale shown",
        "minutes of compute",
    ]
    out = [
        "<h2 id=summary>Summary</h2><table class=summary><tr>"
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr>"
    ]
    md = ["## Summary", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        key = html.escape(r["key"])
        if r.get("planned"):
            out.append(
                f"<tr class=planned-row><td><a href='#{key}'>{key}</a></td><td colspan=7>planned</td></tr>"
            )
            md.append(f"| [{r['key']}](#{r['key']}) | planned |" + " |" * 6)
            continue
        bad = " bad" if r["not_reproduced"] else ""
        amber = " amber" if r["unresolved"] else ""
        sanity = f"{r['sanity_passed']} of {r['sanity']}"
        theory = f"{r['checks_passed']} of {r['checks']}"
        minutes = f"{r['seconds'] / 60:.1f}"
        out.append(
            f"<tr class=paper-row><td><a href='#{key}'>{key}</a></td><td class=n>{r['reproduced']}</td>"
            f"<td class='n{bad}'>{r['not_reproduced']}</td><td class='n{amber}'>{r['unresolved']}</td>"
            f"<td class=n>{sanity}</td><td class=n>{theory}</td><td>{html.escape(r['scale'])}</td>"
            f"<td class=n>{minutes}</td></tr>"
        )
        md.append(
            f"| [{r['key']}](#{r['key']}) | {r['reproduced']} | {r['not_reproduced']} | {r['unresolved']} | "
            f"{sanity} | {theory} | {r['scale']} | {minutes} |"
        )
    return "".join(out) + "</table>", [*md, ""]


def _paper_section(
    results: Path, paper: Paper, head: str, checks: list[dict[str, Any]]
) -> tuple[list[str], list[str], dict[str, Any]]:
    """The HTML and Markdown of one implemented paper, and its summary row."""
    key = paper.key
    links = [(f"arXiv {paper.arxiv}", f"https://arxiv.org/abs/{paper.arxiv}")]
    readme = REPO_ROOT / "papers" / key / "README.md"
    if readme.exists():
        links.append(("README", _rel_link(readme, results)))
    for scale in Scale:
        if (results / key / scale.value / "claims.json").exists():
            links.append((f"claims.json ({scale.value})", f"{key}/{scale.value}/claims.json"))
    body = [
        f"<h2 id={key}>{html.escape(key)}</h2><p class=sub>{html.escape(head)}</p><p class=meta>"
        + " · ".join(f"<a href='{html.escape(u, quote=True)}'>{html.escape(t)}</a>" for t, u in links)
        + "</p>"
    ]
    md = [f"## {key}", "", head, "", " · ".join(f"[{t}]({u})" for t, u in links), ""]
    figures_body: list[str] = []
    figures_md: list[str] = []
    row: dict[str, Any] = {
        "key": key,
        "reproduced": 0,
        "not_reproduced": 0,
        "unresolved": 0,
        "sanity": 0,
        "sanity_passed": 0,
        "checks": len(checks),
        "checks_passed": sum(1 for r in checks if r["_claims"] and all(c.passed for c in r["_claims"])),
        "seconds": 0.0,
        "failed": 0,
    }
    scales: list[str] = []
    with_paper_number: list[tuple[str, Claim]] = []
    for fig in paper.figures():
        done, out_dir, others, broken = newest_complete(results, key, fig.name)
        figures_body.append(
            f"<div class=fig id='{key}--{html.escape(fig.name)}'><h3>{html.escape(fig.title)}</h3>"
            f"<p class=meta>{html.escape(fig.paper_ref)} · <code>{html.escape(fig.name)}</code>"
        )
        figures_md += [f"### {fig.title}", "", f"{fig.paper_ref} · `{fig.name}`", ""]
        for line in broken:
            figures_body.append(f"<p class=broken>not shown, files do not match: {html.escape(line)}</p>")
            figures_md += [f"**Not shown, files do not match:** {line}", ""]
        if done is None:
            figures_body.append(" · not run or incomplete</p></div>")
            figures_md += ["Not run or incomplete.", ""]
            continue
        scales.append(done["scale"])
        row["seconds"] += float(done.get("seconds") or 0.0)
        also = f" (also complete: {', '.join(others)})" if others else ""
        figures_body.append(
            f" · showing scale <b>{html.escape(done['scale'])}</b>, the newest complete{also}"
            f" · {done['seconds']} s</p>"
        )
        figures_md += [
            f"Showing scale **{done['scale']}**, the newest complete{also}; {done['seconds']} s.",
            "",
        ]
        if done.get("expected"):
            figures_body.append(f"<p>{html.escape(done['expected'])}</p>")
            figures_md += [done["expected"], ""]
        rel = out_dir.relative_to(results).as_posix()
        for name in done["files"]:
            if name.endswith(".png"):
                figures_body.append(f"<img src='{rel}/{name}' alt='{html.escape(name)}'>")
                figures_md.append(f"![{name}]({rel}/{name})")
        files = sorted(done.get("sha256_of") or {}) or list(done["files"])
        figures_body.append(
            "<p class=meta>data files: "
            + " · ".join(f"<a href='{rel}/{html.escape(n)}'>{html.escape(n)}</a>" for n in files)
            + "</p>"
        )
        figures_md += ["", "Data files: " + " · ".join(f"[{n}]({rel}/{n})" for n in files), ""]
        config = _read_optional_json(out_dir / "config.json")
        env = _read_optional_json(out_dir / "env.json")
        summary = "config and environment: " + _env_line(env)
        pairs = (("config.json", config), ("env.json", env))
        dumps = [(n, json.dumps(v, indent=2)) for n, v in pairs if v is not None]
        figures_body.append(
            f"<details><summary>{html.escape(summary)}</summary>"
            + "".join(f"<p class=meta>{n}</p><pre>{html.escape(t)}</pre>" for n, t in dumps)
            + "</details>"
        )
        figures_md += [f"<details><summary>{html.escape(summary)}</summary>", ""]
        for n, t in dumps:
            figures_md += [f"`{n}`", "", "```json", t, "```", ""]
        figures_md += ["</details>", ""]
        claims, sanity = _split(_claims(done["claims"]))
        title = "Claims" if sanity else ""
        figures_body.append(_claims_html(claims, title) + _claims_html(sanity, "Sanity checks") + "</div>")
        figures_md += _claims_md(claims, title) + _claims_md(sanity, "Sanity checks")
        states = Counter(c.state for c in claims)
        row["reproduced"] += states["pass"]
        row["not_reproduced"] += states["fail"]
        row["unresolved"] += states["unresolved"]
        row["sanity"] += len(sanity)
        row["sanity_passed"] += sum(c.passed for c in sanity)
        row["failed"] += sum(not c.passed for c in claims + sanity)
        with_paper_number += [(fig.name, c) for c in claims + sanity if c.paper_number is not None]
    row["scale"] = _scale_shown(scales)
    if with_paper_number:
        files = plot_paper_vs_ours(with_paper_number, results / key)
        png = next(f for f in files if f.endswith(".png"))
        body.append(f"<h4>Paper vs ours</h4><img src='{key}/{png}' alt='{PAPER_VS_OURS}' class=pvo>")
        md += ["**Paper vs ours**", "", f"![{PAPER_VS_OURS}]({key}/{png})", ""]
    return body + figures_body, md + figures_md, row


def _bench_section(results: Path) -> tuple[list[str], list[str]]:
    bench_dir = results / "bench"
    bench_files = sorted(bench_dir.glob("*.json")) if bench_dir.exists() else []
    if not bench_files:
        return [], []
    body = ["<h2 id=bench>Benchmarks</h2>"]
    md = ["## Benchmarks", ""]
    for path in bench_files:
        png = path.with_suffix(".png")
        rel = path.relative_to(results).as_posix()
        body.append(f"<h3>{html.escape(path.stem)}</h3><p><a href='{rel}'><code>{rel}</code></a></p>")
        md += [f"### {path.stem}", "", f"[`{rel}`]({rel})", ""]
        if png.exists():
            body.append(f"<img src='{png.relative_to(results).as_posix()}'>")
            md += [f"![{path.stem}]({png.relative_to(results).as_posix()})", ""]
        try:
            targets = bench_targets(read_json(path))
        except (OSError, ValueError) as err:
            body.append(f"<p class=broken>unreadable: {html.escape(str(err))}</p>")
            md += [f"**Unreadable:** {err}", ""]
            continue
        if targets:
            rows = "".join(
                f"<tr class={'pass' if met else 'fail'}><td class=mark>{'MET' if met else 'MISSED'}</td>"
                f"<td>{html.escape(name)}</td></tr>"
                for name, met in targets
            )
            body.append(f"<table class=targets><tr><th></th><th>target</th></tr>{rows}</table>")
            md += ["| | target |", "|---|---|"]
            md += [f"| {'MET' if met else '**MISSED**'} | {_md_cell(name)} |" for name, met in targets]
            md.append("")
    return body, md

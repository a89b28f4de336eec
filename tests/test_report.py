"""The report of a small synthetic results directory (toy papers run through `run_figure`): the summary table,
the claim states and kinds, links, folded config and environment, the paper-vs-ours plot, REPORT.md mirroring
index.html, and the page rendered by headless Chromium with every image loading."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from common.claims import Claim
from common.configs import Count, Scale
from common.experiment import Check, Figure, Paper, RunContext, run_check, run_figure
from common.report import bench_targets, write_report


@dataclass(frozen=True)
class ToyConfig:
    points: Count = 5
    seed: int = 0


def _plot(data, out_dir: Path) -> list[str]:
    from common.plotting import new_figure, save

    fig, (ax,) = new_figure()
    ax.plot(range(len(data["y"])), data["y"], marker="o")
    return save(fig, out_dir, "toy_curve")


def _run(config: ToyConfig, ctx: RunContext) -> dict:
    return {"y": [float(i * i) for i in range(config.points)]}


def _alpha_claims(data, config) -> list[Claim]:
    return [
        Claim.check(
            "grows", "the curve grows", 16.0, ">=", 10.0, "about 15", "4 points",
            paper_number=15.0, paper_unit="x", paper_source="Table 2",
        ),
        Claim.check("flat", "the curve is flat", 16.0, "<=", 1.0, "flat in Fig. 2", paper_number=0.5),
        Claim.check(
            "gain", "the gain beats 0.6", 0.62, ">", 0.6,
            per_seed=(0.55, 0.6, 0.7), interval=(0.55, 0.7), paper_number=0.7, paper_source="Fig. 3",
        ),
        Claim.check("identity", "y[0] is 0 by construction", 0.0, "<=", 0.0, kind="sanity"),
        Claim.check("broken_identity", "a sanity check that fails", 1.0, "<=", 0.0, kind="sanity"),
    ]  # fmt: skip


def _beta_claims(data, config) -> list[Claim]:
    return [Claim.check("ok", "a plain claim", 1.0, ">=", 0.5, "text only")]


def _paper(key: str, claims, figures: int = 1) -> Paper:
    figs = [
        Figure(
            f"fig_{key}_{i}", f"{key} figure {i}", f"Fig. {i}", {Scale.QUICK: ToyConfig()}, _run, _plot,
            claims, expected="a rising curve",
        )
        for i in range(figures)
    ]  # fmt: skip
    paper = Paper(key, f"The {key} paper", "A. Author", "Venue 2025", f"2501.0000{len(key) % 10}")
    object.__setattr__(paper, "figures", lambda: figs)
    return paper


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A results directory with two toy papers (one figure of alpha never run), a planned paper, a theory
    check of alpha and a benchmark JSON; returns (results, listed papers, write_report's failed count)."""
    results = tmp_path_factory.mktemp("results")
    alpha, beta = _paper("toy_alpha", _alpha_claims, figures=2), _paper("toy_beta", _beta_claims)
    planned = Paper("toy_planned", "Planned", "B", "V", "2501.00009", status="planned")
    run_figure(alpha, alpha.figures()[0], Scale.QUICK, results=results, show_progress=False)
    run_figure(beta, beta.figures()[0], Scale.QUICK, results=results, show_progress=False)
    check = Check(
        "toy_alpha_identity", "toy_alpha", "An identity", "Thm. 1",
        lambda: [Claim.check("exact", "holds", 1.0, ">=", 1.0, kind="sanity")],
    )  # fmt: skip
    run_check(check, results)
    (results / "bench").mkdir()
    (results / "bench" / "toy.json").write_text(
        json.dumps({"targets": [{"name": "fast", "met": True}, {"name": "small", "met": False}]})
    )
    listed = [alpha, beta, planned]
    _, _, failed = write_report(results, listed)
    return results, listed, failed


def test_summary_table_counts_claims_sanity_and_checks(report):
    results, listed, failed = report
    page = (results / "index.html").read_text()
    assert "<b>2 of 4 claims reproduced</b>" in page  # kind "claim" only: alpha's 3 and beta's 1
    assert "1 unresolved, 1 not reproduced; sanity checks 1 of 2 passed; theory checks 1 of 1 passed" in page
    rows = re.findall(r"<tr class=(paper-row|planned-row)><td><a href='#(\w+)'>", page)
    assert [key for _, key in rows] == [p.key for p in listed]
    alpha_row = page.split("<a href='#toy_alpha'>toy_alpha</a>")[1].split("</tr>")[0]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", alpha_row)
    assert cells[:6] == ["1", "1", "1", "1 of 2", "1 of 1", "quick"]
    assert float(cells[6]) >= 0.0
    assert failed == 2  # flat and broken_identity; gain passes by its point estimate (and is unresolved)
    for key in ("toy_alpha", "toy_beta", "toy_planned"):
        assert f"id={key}>" in page  # the anchors the summary links to


def test_claim_rows_show_state_interval_paper_number_kind_and_sanity_apart(report):
    results, _, _ = report
    page = (results / "index.html").read_text()
    section = page.split("<h2 id=toy_alpha>")[1].split("<h2 id=toy_beta>")[0]
    claims_table, sanity_table = section.split("<h4>Sanity checks</h4>")
    assert "<tr class=pass><td class=mark>PASS</td><td><code>grows</code>" in claims_table
    assert "<tr class=fail><td class=mark>FAIL</td><td><code>flat</code>" in claims_table
    assert "<tr class=unresolved><td class=mark>UNRESOLVED</td><td><code>gain</code>" in claims_table
    assert "0.62 [0.55, 0.7]" in claims_table and "per seed: 0.55, 0.6, 0.7" in claims_table
    assert "15x (Table 2)" in claims_table and "0.7 (Fig. 3)" in claims_table
    assert "identity" not in claims_table and "<code>identity</code>" in sanity_table
    assert "<td>sanity</td>" in sanity_table and "<td>claim</td>" in claims_table
    assert "text only" in page  # a paper value without a number shows its text


def test_links_data_files_and_folded_environment(report):
    results, _, _ = report
    page = (results / "index.html").read_text()
    assert "href='https://arxiv.org/abs/2501.00009'" in page
    rel = "toy_alpha/quick/fig_toy_alpha_0"
    for name in ("data.json", "config.json", "env.json", "toy_curve.pdf", "toy_curve.png"):
        assert f"<a href='{rel}/{name}'>{name}</a>" in page
    env = json.loads((results / rel / "env.json").read_text())
    assert env["cpu_model"]
    details = page.split("<details><summary>")[1].split("</details>")[0]
    threads = f"threads {env['torch_threads']}"
    for text in (env["git_sha"], env["torch"], "device cpu", threads, env["cpu_model"]):
        assert html.escape(str(text)) in details
    assert "&quot;points&quot;: 5" in details  # config.json, folded
    assert "not run or incomplete" in page.split("toy_alpha figure 1")[1]


def test_paper_vs_ours_plot_only_where_a_claim_has_a_paper_number(report):
    results, _, _ = report
    assert (results / "toy_alpha" / "paper_vs_ours.png").stat().st_size > 1000
    assert not (results / "toy_beta" / "paper_vs_ours.png").exists()
    page = (results / "index.html").read_text()
    assert "<img src='toy_alpha/paper_vs_ours.png'" in page and "toy_beta/paper_vs_ours.png" not in page


def test_report_md_mirrors_the_page(report):
    results, listed, _ = report
    md = (results / "REPORT.md").read_text()
    assert md.startswith("# paper-companion results\n\n**2 of 4 claims reproduced** (1 unresolved")
    summary = md.split("## Summary")[1].split("\n## ")[0]
    assert [line.split("]")[0][3:] for line in summary.splitlines() if line.startswith("| [")] == [
        p.key for p in listed
    ]
    assert "| [toy_alpha](#toy_alpha) | 1 | 1 | 1 | 1 of 2 | 1 of 1 | quick |" in summary
    assert "[arXiv 2501.00009](https://arxiv.org/abs/2501.00009)" in md
    row = "| **UNRESOLVED** | `gain` the gain beats 0.6 | 0.62 [0.55, 0.7]<br>per seed: 0.55, 0.6, 0.7 |"
    assert row in md
    assert "**Sanity checks**" in md and "<details><summary>config and environment: git " in md
    assert "![paper_vs_ours](toy_alpha/paper_vs_ours.png)" in md
    assert "| **MISSED** | small |" in md


def test_bench_targets_reads_every_form_the_benchmarks_write():
    record = {
        "targets": [{"name": "a", "met": True}, {"name": "b", "met": False}],
        "targets_met": {"c": True},
        "summary": {"1024": {"targets": {"d": {"measured": 1.0, "threshold": 2.0, "passed": False}}}},
        "other": {"targets": {"e": {"min_speedup": 2, "measured": 3, "met": True}, "f": "not a verdict"}},
    }
    assert bench_targets(record) == [
        ("a", True),
        ("b", False),
        ("c", True),
        ("summary.1024: d", False),
        ("other: e", True),
    ]
    assert bench_targets({"rows": [1, 2]}) == []


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


PROBE = """
<pre id=probe-result></pre><img id=probe-broken src='no/such/image.png' style='display:none'>
<script>
window.addEventListener('load', function () {
  var images = Array.prototype.map.call(document.images, function (img) {
    return {src: img.getAttribute('src'), ok: img.complete && img.naturalWidth > 0, id: img.id};
  });
  var rows = document.querySelectorAll('table.summary tr.paper-row, table.summary tr.planned-row');
  document.getElementById('probe-result').textContent = JSON.stringify({
    images: images,
    summary_rows: Array.prototype.map.call(rows, function (r) { return r.cells[0].textContent; })
  });
});
</script>
"""


def render(browser: str, page: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=15000", *extra,
            page.resolve().as_uri(),
        ],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def test_report_renders_in_headless_chromium_with_every_image(report, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not found (install it: apt-get install chromium); the browser test is skipped")
    results, listed, _ = report
    page = (results / "index.html").read_text()
    probe = results / "_probe.html"  # beside index.html, so every relative src resolves the same way
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    try:
        done = render(browser, probe, tmp_path, "--dump-dom")
    finally:
        probe.unlink()
    match = re.search(r"<pre id=\"probe-result\">(.*?)</pre>", done.stdout, re.S)
    assert match and match.group(1), f"no probe result (rc {done.returncode}): {done.stderr[-2000:]}"
    probed = json.loads(html.unescape(match.group(1)))
    images = [i for i in probed["images"] if i["id"] != "probe-broken"]
    assert [i["ok"] for i in probed["images"] if i["id"] == "probe-broken"] == [False]  # the probe can tell
    assert images and all(i["ok"] for i in images), [i["src"] for i in images if not i["ok"]]
    srcs = {i["src"] for i in images}
    assert {"toy_alpha/quick/fig_toy_alpha_0/toy_curve.png", "toy_alpha/paper_vs_ours.png"} <= srcs
    assert probed["summary_rows"] == [p.key for p in listed]

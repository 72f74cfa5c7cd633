"""``report.html``: one self-contained page per sweep or run folder (plain HTML, a little CSS and vanilla
JavaScript; figures embedded as data URIs), readable offline from the folder or mailed on its own.

A sweep's page: the comparison table as ``table.md`` shows it (every column of
mmemolr.compare.aggregate.table_rows, so columns added there appear here; a click on a header sorts), the
runs that are missing (failed, partly trained, not started), training curves, every figure, the refinement
case studies in their dialogue context, and per run its selected epoch, stopping, warnings, per-epoch
metrics, config and links to its files (relative to the folder). A run's page: the same for one run.

The page never breaks: a part that cannot be built says why in its place (and the rest is shown).
"""

from __future__ import annotations

import base64
import html
import logging
import math
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mmemolr.compare.aggregate import (
    ERROR_FILE,
    FLOOR_ROW,
    SWEEP_FILE,
    _describe,
    build_table,
    floor_lines,
    legend,
    load_plan,
    run_status,
    table_rows,
)
from mmemolr.fileio import write_text_atomic
from mmemolr.report.runs import RunData, load_run

log = logging.getLogger(__name__)
PAGE = "report.html"
RUN_FILES = ("config.yaml", "metrics.csv", "metrics.json", "results.json", "predictions.csv", "test_states.npz",
             "inputs.json", "best.pt", "last.pt", ERROR_FILE)
# Figure name -> what it shows; figures not listed are shown under their name.
CAPTIONS = {
    "comparison": "Test weighted F1 and accuracy per setting: mean ± std over seeds (* paired t-test p < 0.05).",
    "curves": "Training curves per epoch, one colour per run: the training loss (solid; the target's loss, "
              "KL to the refined distribution for RLD) and the dev cross-entropy (dashed), dev weighted F1 "
              "below; ★ the epoch selected on dev.",
    "per_class_f1": "Per-class F1 on the test split.",
    "confusion": "Confusion matrices on the test split (% of each gold class).",
    "learned_confusion": "Learned label confusions of refining targets: the mean target distribution per gold class.",
    "refinement": "Refined label distributions of the case studies below: one-hot label, refined target, predictions.",
    "tsne": "t-SNE of the test emotion states, one-hot run beside the RLD run.",
}
ORDER = ("comparison", "per_class_f1", "confusion", "learned_confusion", "refinement", "tsne")

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1280px;
padding:0 20px 40px;color:#1d2330;background:#fff}
h1{font-size:22px;margin:18px 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d8dce4;
padding-bottom:4px}h3{font-size:15px;margin:16px 0 6px}
nav a{margin-right:14px}a{color:#1f5fbf}.meta{color:#4b5565;margin:2px 0}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border:1px solid #d8dce4;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f1f3f7;font-weight:600}
table.sortable th{cursor:pointer;user-select:none;white-space:nowrap}
table.sortable th[aria-sort=ascending]::after{content:" \\25B2";font-size:10px}
table.sortable th[aria-sort=descending]::after{content:" \\25BC";font-size:10px}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tfoot td{background:#fafbfc;font-style:italic}
.wide{overflow-x:auto}
.box{border:1px solid;border-radius:4px;padding:8px 12px;margin:10px 0}
.warn{background:#fff8e6;border-color:#e3b341}.error{background:#fdecec;border-color:#d05454}
figure{margin:14px 0}figure img{max-width:100%;height:auto;border:1px solid #e4e7ee}
figcaption{color:#4b5565;font-size:13px}
.case{border:1px solid #d8dce4;border-radius:4px;padding:6px 12px;margin:12px 0}
tr.case-row td{background:#e8f0fe;font-weight:600}
.bar{display:inline-block;height:10px;background:#5b8def;vertical-align:middle;margin-right:4px}
td.dist{min-width:110px;white-space:nowrap}
details.run{border:1px solid #d8dce4;border-radius:4px;margin:6px 0;padding:4px 10px}
details.run>summary{cursor:pointer}
tr.selected td{background:#e8f6e8;font-weight:600}
pre{background:#f6f8fa;padding:8px;overflow-x:auto;font-size:12px}
.small{font-size:12px;color:#4b5565}
"""

# Sort a table's body rows by the clicked column: numbers by value (the first number in the cell, so
# "57.12 ± 0.40" and "<0.001*" sort as numbers), other text alphabetically, empty cells and "–" last.
SCRIPT = """
(function () {
  function value(cell) {
    var text = cell.textContent.trim();
    if (text === "" || text === "\\u2013") { return null; }
    var m = text.replace("\\u2212", "-").match(/^[<>]?\\s*([+-]?\\d+(?:\\.\\d+)?(?:e[+-]?\\d+)?)/i);
    return m ? parseFloat(m[1]) : text.toLowerCase();
  }
  function compare(a, b) {
    if (a === null || b === null) { return a === b ? 0 : (a === null ? 1 : -1); }
    if (typeof a === typeof b) { return a < b ? -1 : (a > b ? 1 : 0); }
    return typeof a === "number" ? -1 : 1;
  }
  function sortBy(table, column, header) {
    var body = table.tBodies[0];
    var descending = header.getAttribute("aria-sort") === "ascending";
    var rows = Array.prototype.slice.call(body.rows).map(function (row, i) {
      return {row: row, key: value(row.cells[column]), i: i};
    });
    rows.sort(function (x, y) {
      if (x.key === null || y.key === null) { return compare(x.key, y.key) || x.i - y.i; }
      return (descending ? -compare(x.key, y.key) : compare(x.key, y.key)) || x.i - y.i;
    });
    rows.forEach(function (r) { body.appendChild(r.row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", descending ? "descending" : "ascending");
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
      th.title = "sort by this column";
      th.addEventListener("click", function () { sortBy(table, column, th); });
    });
  });
})();
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _number(text: str) -> bool:
    head = text.lstrip("<>+-−").split(" ")[0].rstrip("*%")
    try:
        float(head)
        return True
    except ValueError:
        return False


def html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], css: str = "", foot: Sequence[Sequence[Any]] = (),
               row_class: Callable[[int], str] | None = None) -> str:
    """A table of text cells (escaped); cells that start with a number are right-aligned."""
    def cells(row: Sequence[Any], tag: str = "td") -> str:
        out = []
        for value in row:
            text = "" if value is None else str(value)
            out.append(f'<{tag}{" class=num" if tag == "td" and _number(text) else ""}>{esc(text)}</{tag}>')
        return "".join(out)

    body = "".join(f'<tr{f" class={row_class(i)}" if row_class and row_class(i) else ""}>{cells(r)}</tr>'
                   for i, r in enumerate(rows))
    foot_html = f"<tfoot>{''.join(f'<tr>{cells(r)}</tr>' for r in foot)}</tfoot>" if foot else ""
    return (f'<div class="wide"><table{f" class={esc(css)}" if css else ""}><thead><tr>'
            + "".join(f"<th>{esc(h)}</th>" for h in headers) + f"</tr></thead><tbody>{body}</tbody>{foot_html}"
            "</table></div>")


def _section(anchor: str, title: str, build: Callable[[], str]) -> str:
    """A section of the page; a builder that fails leaves its error in the section, not a broken page."""
    try:
        inner = build()
    except Exception as err:  # the page is the place to show what went wrong with this part
        log.warning("report.html: the %s part could not be built: %s", anchor, err)
        inner = f'<p class="box error">This part could not be built: {esc(type(err).__name__)}: {esc(err)}</p>'
    if not inner:
        return ""
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{inner}</section>'


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}">'


def _figure(name: str, path: Path) -> str:
    return (f'<figure id="figure-{esc(name)}">{_image(path, name)}<figcaption><b>{esc(name)}</b> '
            f'({esc(Path(path).name)}): {esc(CAPTIONS.get(name, ""))}</figcaption></figure>')


def _pct(value: Any) -> str:
    return "–" if not isinstance(value, (int, float)) else f"{100 * value:.2f}"


def _link(prefix: str, name: str) -> str:
    return f'<a href="{esc(quote(prefix + name))}">{esc(name)}</a>'


# --- parts -----------------------------------------------------------------------------------------------

def figures_part(made: dict[str, Path]) -> str:
    names = [n for n in ORDER if n in made] + sorted(n for n in made if n not in ORDER)
    shown = [n for n in names if n != "curves" and str(made[n]).endswith(".png") and Path(made[n]).exists()]
    return "".join(_figure(n, made[n]) for n in shown)


def curves_part(made: dict[str, Path]) -> str:
    path = made.get("curves")
    return _figure("curves", path) if path and Path(path).exists() else ""


def cases_part(runs: Sequence[RunData], utterances: Sequence[str] | None) -> str:
    from mmemolr.report.build import choose_pair, refinement_examples
    from mmemolr.report.cases import CONTEXT, case_studies

    onehot, rld = choose_pair(runs)
    if rld is None:
        return ""
    examples, _ = refinement_examples(rld, onehot, utterances)
    if not examples:
        return ""
    labels = rld.labels
    other = f" and the one-hot run {esc(onehot.path.name)}" if onehot is not None else ""
    out = [f'<p class="meta">Test utterances of the run {esc(rld.path.name)}{other}, chosen as in the refinement '
           "figure: per gold emotion, the utterance whose refined target differs most from its class's mean "
           f"target. Each in its dialogue, with up to {CONTEXT} utterances before and after it.</p>"]
    for case in case_studies(rld, examples):
        turns = [[t.index, t.speaker, t.text, t.gold, t.pred] for t in case.turns]
        out.append(f'<article class="case" id="case-{esc(case.id)}"><h3>{esc(case.id)}: gold {esc(case.gold)}'
                   f' <span class="small">dialogue {esc(case.dialogue)}</span></h3>')
        if case.note:
            out.append(f'<p class="small">{esc(case.note)}</p>')
        if turns:
            out.append(html_table(["#", "speaker", "utterance", "gold", f"predicted ({rld.path.name})"], turns,
                                  css="dialogue", row_class=lambda i, c=case: "case-row" if c.turns[i].case else ""))
        else:
            out.append(f'<p class="box warn">No dialogue context: {esc(case.id)} was not found in the corpus.</p>')
        head = "".join(f"<th>{esc(name)}</th>" for name in case.series)
        rows = []
        for k, label in enumerate(labels):
            bars = "".join(f'<td class="dist"><span class="bar" style="width:{100 * _clip(p[k]):.0f}px"></span>'
                           f"{p[k]:.3f}</td>" for p in case.series.values())
            rows.append(f"<tr><td>{esc(label)}</td>{bars}</tr>")
        out.append(f'<table class="dist"><thead><tr><th>label</th>{head}</tr></thead><tbody>{"".join(rows)}'
                   "</tbody></table></article>")
    return "".join(out)


def _clip(p: float) -> float:
    return 0.0 if not math.isfinite(p) else min(1.0, max(0.0, p))


def run_part(run_dir: Path, prefix: str, status: str, run: RunData | None, open_: bool = False) -> str:
    """One run: status, selected epoch and stopping, warnings, refinement verdict, files, epochs, config."""
    from mmemolr.train import rundir

    summary = [f"<b>{esc(run_dir.name)}</b>", esc(status)]
    body = []
    history = rundir.read_history(run_dir) if (run_dir / rundir.METRICS_JSON).exists() else []
    best = None
    if run is not None:
        results = run.results
        best = results.get("best_epoch")
        optim = (results.get("config") or {}).get("optim") or {}
        ran = results.get("epochs_run")
        stop = ("early stopping: no dev improvement for "
                f"{optim.get('patience')} epochs" if ran is not None and ran < optim.get("max_epochs", math.inf)
                else f"stopped at optim.max_epochs={optim.get('max_epochs')}")
        summary += [f"test W-F1 {_pct(results['test'].get('weighted_f1'))}",
                    f"dev W-F1 {_pct((results.get('valid') or {}).get('weighted_f1'))}",
                    f"selected epoch {esc(best)} of {esc(ran)}"]
        speed = results.get("seconds_per_epoch")
        speed = f"{speed:.2f} s/epoch" if isinstance(speed, (int, float)) else ""
        body.append(f"<p>Selected epoch <b>{esc(best)}</b> of {esc(ran)} ({esc(stop)}); {esc(speed)} on "
                    f"{esc(results.get('device'))}.</p>")
        for warning in results.get("warnings") or []:
            body.append(f'<p class="box warn">warning: {esc(warning)}</p>')
        refined = (results.get("refinement") or {}).get("test")
        if refined:
            reason = refined.get("verdict_reason")
            body.append(f"<p>Refinement on the test split: <b>{esc(refined.get('verdict'))}</b>"
                        + (f" ({esc(reason)})" if reason else "") + ".</p>")
    elif history:
        summary.append(f"{len(history)} epoch(s) recorded")
    error = run_dir / ERROR_FILE
    if error.exists():
        first = error.read_text(encoding="utf-8", errors="replace").strip().splitlines()[:1]
        body.append(f'<p class="box error">{esc(first[0] if first else "failed")}</p>')
    files = [name for name in RUN_FILES if (run_dir / name).exists()]
    body.append("<p>Files: " + (" · ".join(_link(prefix, n) for n in files) or "none yet") + "</p>")
    if history:
        columns = list(dict.fromkeys(k for row in history for k in row))
        rows = [[_cell(row.get(c)) for c in columns] for row in history]
        body.append("<details><summary>per-epoch metrics (metrics.csv; the selected epoch highlighted)</summary>"
                    + html_table(columns, rows, css="epochs",
                                 row_class=lambda i: "selected" if history[i].get("epoch") == best else "")
                    + "</details>")
    config = run_dir / "config.yaml"
    if config.exists():
        body.append(f"<details><summary>config.yaml</summary><pre>{esc(config.read_text(encoding='utf-8'))}</pre>"
                    "</details>")
    return (f'<details class="run" id="run-{esc(run_dir.name)}"{" open" if open_ else ""}>'
            f"<summary>{' · '.join(summary)}</summary>{''.join(body)}</details>")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def _load(run_dir: Path) -> tuple[RunData | None, str]:
    """The run if complete, and its status (a damaged results.json is a status, not an exception)."""
    try:
        run = load_run(run_dir)
    except ValueError as err:
        return None, f"damaged: {err}"
    return run, "complete" if run is not None else run_status(run_dir)


# --- pages -----------------------------------------------------------------------------------------------

def sweep_body(folder: Path, made: dict[str, Path], utterances: Sequence[str] | None) -> tuple[str, str]:
    plan = load_plan(folder)
    title = f"{plan.preset} on {plan.corpus_name}"
    loaded = {spec.name: _load(folder / spec.name) for spec in plan.runs}
    runs = [run for run, _ in loaded.values() if run is not None]
    missing = [(name, status) for name, (run, status) in loaded.items() if run is None]

    def table_json() -> dict[str, Any]:
        import json

        path = folder / "table.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else build_table(plan, folder)

    def header() -> str:
        try:
            lines = _describe(table_json())
        except Exception as err:  # the sections below say more
            lines = [f"corpus {plan.corpus_name}, preset {plan.preset}: the table could not be read ({err})"]
        return "".join(f'<p class="meta">{esc(line)}</p>' for line in lines)

    def missing_part() -> str:
        if not missing:
            return ""
        items = []
        for name, status in missing:
            error = folder / name / ERROR_FILE
            why = ""
            if error.exists():
                first = error.read_text(encoding="utf-8", errors="replace").strip().splitlines()[:1]
                why = f": {esc(first[0]) if first else ''} ({_link(name + '/', ERROR_FILE)})"
            elif status == "partial":
                why = ": partly trained; rerun the same `mmemolr compare` command to resume it"
            elif status == "pending":
                why = ": not started"
            items.append(f'<li><a href="#run-{esc(name)}">{esc(name)}</a> ({esc(status)}){why}</li>')
        return (f'<div class="box warn"><b>{len(missing)} of {len(plan.runs)} runs are missing</b> (the table '
                f'and figures use the {len(runs)} complete ones):<ul>{"".join(items)}</ul></div>')

    def table_part() -> str:
        table = table_json()
        headers, rows = table_rows(table)
        body = [r for r in rows if r[0] != FLOOR_ROW]
        foot = [r for r in rows if r[0] == FLOOR_ROW]
        notes = [*floor_lines(table), legend(table)]
        return (html_table(headers, body, css="sortable", foot=foot)
                + "".join(f'<p class="small">{esc(line)}</p>' for line in notes)
                + '<p class="small">Click a header to sort. Files: '
                + " · ".join(_link("", n) for n in ("table.md", "table.csv", "table.json") if (folder / n).exists())
                + "</p>")

    def runs_part() -> str:
        return "".join(run_part(folder / spec.name, f"{spec.name}/", loaded[spec.name][1], loaded[spec.name][0])
                       for spec in plan.runs)

    parts = [header(), _section("missing", "Missing runs", missing_part),
             _section("table", "Comparison table", table_part),
             _section("curves", "Training curves", lambda: curves_part(made)),
             _section("figures", "Figures", lambda: figures_part(made)),
             _section("cases", "Refinement case studies", lambda: cases_part(runs, utterances)),
             _section("runs", f"Runs ({len(runs)} of {len(plan.runs)} complete)", runs_part)]
    return title, "".join(parts)


def run_body(folder: Path, made: dict[str, Path], utterances: Sequence[str] | None) -> tuple[str, str]:
    run, status = _load(folder)
    title = f"run {folder.name}"

    def header() -> str:
        if run is None:
            return (f'<p class="box warn">This run is not complete ({esc(status)}): rerun `mmemolr train` with the '
                    "same arguments to finish it.</p>")
        r = run.results
        config = r.get("config") or {}
        meta = (f"corpus {r.get('corpus')}, modalities {'+'.join(run.modalities)}, target "
                f"{run.target.get('name')}, backbone {(config.get('model') or {}).get('backbone')}, seed {run.seed}")
        rows = [[split, _pct(r[split].get("weighted_f1")), _pct(r[split].get("accuracy")),
                 _pct(r[split].get("macro_f1"))] for split in ("valid", "test") if r.get(split)]
        return f'<p class="meta">{esc(meta)}</p>' + html_table(["split", "W-F1 %", "Acc %", "M-F1 %"], rows)

    parts = [header(), _section("curves", "Training curves", lambda: curves_part(made)),
             _section("figures", "Figures", lambda: figures_part(made)),
             _section("cases", "Refinement case studies", lambda: cases_part([run] if run else [], utterances)),
             _section("runs", "Run", lambda: run_part(folder, "", status, run, open_=True))]
    return title, "".join(parts)


def write_page(folder: str | Path, made: dict[str, Path], utterances: Sequence[str] | None = None,
               error: BaseException | None = None) -> Path:
    """Write ``<folder>/report.html`` for a sweep folder (sweep.json) or a run folder; returns its path."""
    folder = Path(folder)
    sweep = (folder / SWEEP_FILE).exists()
    try:
        title, body = (sweep_body if sweep else run_body)(folder, made, utterances)
    except Exception as err:  # e.g. an unreadable sweep.json: the page says so
        title, body = f"report of {folder.name}", (f'<p class="box error">The report could not be built: '
                                                   f"{esc(type(err).__name__)}: {esc(err)}</p>")
    if error is not None:
        body = (f'<p class="box error">The figures could not be made: {esc(type(error).__name__)}: {esc(error)}; '
                "what could be read is shown below.</p>") + body
    nav = "".join(f'<a href="#{a}">{t}</a>' for a, t in (("table", "Table"), ("curves", "Curves"),
                                                          ("figures", "Figures"), ("cases", "Case studies"),
                                                          ("runs", "Runs")) if f'id="{a}"' in body)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>mmemolr report: {esc(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{esc(title)}</h1><nav>{nav}</nav></header><main>{body}</main>"
            f'<footer class="small"><p>Written by <code>mmemolr report</code> at {esc(created)} from {esc(folder)}. '
            "Self-contained (figures embedded); links to run files work from the folder.</p></footer>"
            f"<script>{SCRIPT}</script></body></html>\n")
    write_text_atomic(folder / PAGE, page)
    return folder / PAGE

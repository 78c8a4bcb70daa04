"""The report of a comparison, built from its results.jsonl alone: a Markdown table (mean +- std over
seeds), a self-contained HTML page with plots, and a verdict computed from the numbers.

    from lmtransfer import write_report
    print(write_report("runs/compare-demo").markdown)
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmtransfer.compare.card import comparison_card
from lmtransfer.compare.kinds import UNTRAINED_KINDS
from lmtransfer.compare.results import Stat, Summary, metric_name, points, read_rows, summarize, trials_text
from lmtransfer.compare.verdict import verdict
from lmtransfer.compare.winner import write_winner
from lmtransfer.core.atomic import atomic_write_text
from lmtransfer.core.text import human_bytes
from lmtransfer.training.convergence import RULE

CONVERGED_NOTE = (
    f"✓: converged, {RULE}; a row that had not converged ran again with twice the steps (x2, x4), and one "
    "still not converged (✗) is under-trained and left out of the verdict."
)


@dataclass
class Report:
    markdown: str
    html: str
    verdict: str
    summaries: list[Summary]
    directory: Path | None = None


def _cell(stat: Stat | None, scale: float = 1.0, digits: int = 1) -> str:
    if stat is None:
        return "-"
    mean = f"{stat.mean * scale:,.{digits}f}"
    return mean if stat.n < 2 else f"{mean} ± {stat.std * scale:,.{digits}f}"


def _quality(summary: Summary, split: str, scale: float) -> str:
    """The metric's mean over seeds and its 95% interval where the units are there, else mean ± std."""
    interval = summary.intervals.get(split)
    stat = getattr(summary, split)
    if interval is None or stat is None:
        return _cell(stat, scale, 2)
    shown = interval.scaled(scale)
    return f"{stat.mean * scale:,.2f} [{shown.low:,.1f}, {shown.high:,.1f}]"


def _tuning(search: dict[str, Any] | None) -> str:
    """A search's budget: its trials and their seconds."""
    if not search:
        return "-"
    return f"{trials_text(search)}, {search['seconds']:,.0f} s"


def _steps(summary: Summary) -> str:
    """Optimizer steps of the runs kept, marked converged (✓) or under-trained (✗), with how many times
    compare doubled the budget to get there: ``600 ✓ (x2)``."""
    steps = _cell(summary.steps, 1, 0)
    if summary.converged is None:
        return steps
    doubled = f" (x{2**summary.extensions})" if summary.extensions else ""
    return f"{steps} {'✓' if summary.converged else '✗'}{doubled}"


def table_rows(summaries: list[Summary]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the results table (mean over seeds, with its 95% interval or ± sample std)."""
    scale, name = points(summaries), metric_name(summaries)
    swept = any(s.train_size is not None for s in summaries)
    tuned = any(s.search for s in summaries)
    header = ["variant", "encoder", "kind", *(["train"] if swept else []), "seeds", f"dev {name}", f"test {name}"]
    header += ["tuning"] if tuned else []
    header += ["steps"]
    header += ["extraction s", "training s", "eval s", "peak RSS MiB", "features", "trainable params", "inference ex/s"]
    cells = []
    for s in summaries:
        c = s.costs
        seeds = f"{len(s.seeds)}" + (f" ({len(s.failed)} failed)" if s.failed else "")
        rss = (
            Stat(c["peak_rss_bytes"].mean / 2**20, c["peak_rss_bytes"].std / 2**20, 1)
            if c.get("peak_rss_bytes")
            else None
        )
        cache = c.get("cache_bytes")
        params = c.get("trainable_parameters")
        quality = [_quality(s, "dev", scale), _quality(s, "test", scale)]
        seconds = [_cell(c.get(name)) for name in ("extraction", "training", "evaluation")]
        sizes = [_cell(rss, 1, 0), human_bytes(cache.mean) if cache and cache.mean else "-"]
        sizes += [f"{params.mean:,.0f}" if params else "-", _cell(c.get("inference"), 1, 0)]
        size = [f"{s.train_examples:,}" if s.train_examples is not None else str(s.train_size)] if swept else []
        tuning = [_tuning(s.search)] if tuned else []
        budget = [_steps(s)]
        cells.append([s.variant, s.encoder, s.kind, *size, seeds, *quality, *tuning, *budget, *seconds, *sizes])
    return header, cells


def table_markdown(summaries: list[Summary]) -> str:
    """The results table in Markdown, with the note on what its numbers are."""
    header, cells = table_rows(summaries)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    untrained = any(s.kind in UNTRAINED_KINDS for s in summaries)
    train = (
        " Train: the labelled examples a row used (a prompt's demonstrations; none for zero-shot), whatever "
        "the training size: it ran once, beside every size."
        if untrained
        else ""
    )
    return (
        "\n".join(lines) + f"\n\n{_note(summaries)} Seconds are wall time; extraction is the shared one's. "
        f"Steps: optimizer steps of the run kept; {CONVERGED_NOTE}{train}\n"
    )


def _note(summaries: list[Summary]) -> str:
    if any(s.intervals for s in summaries):
        return (
            "Dev and test: the mean over seeds [its 95% paired-bootstrap interval over the evaluation examples, "
            "and over the seeds where there are several]; other numbers: mean ± sample standard deviation over seeds."
        )
    return "Mean ± sample standard deviation over seeds."


def markdown(summaries: list[Summary], verdict_text: str) -> str:
    """The verdict first, then the table."""
    return f"**Verdict.** {verdict_text}\n\n" + table_markdown(summaries)


def _html_cell(text: str) -> str:
    """A table cell for the page: a metric's interval (or ± std) on a line of its own under the mean."""
    e = html.escape
    for mark in (" [", " ± "):
        if mark in text and text[0].isdigit():
            mean, rest = text.split(mark, 1)
            return f'{e(mean)}<br><span class="ci">{e(mark.strip())}{" " if mark == " ± " else ""}{e(rest)}</span>'
    return e(text)


def build_report(
    rows: list[dict[str, Any]], title: str = "lmtransfer compare", directory: str | Path | None = None
) -> Report:
    """The report of ``rows``; their evaluation units' files are looked up relative to ``directory``."""
    from lmtransfer.compare.plots import figures  # matplotlib, only when a report is drawn

    summaries = summarize(rows, directory)
    text, note = verdict(summaries), _note(summaries)
    md = markdown(summaries, text)
    header, cells = table_rows(summaries)
    return Report(
        md,
        _html(title, header, cells, figures(summaries, points(summaries), metric_name(summaries)), text, note),
        text,
        summaries,
    )


def _html(
    title: str, header: list[str], cells: list[list[str]], figures: list[tuple[str, str]], text: str, note: str
) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in row) + "</tr>\n" for row in cells)
    plots = "".join(f"<figure><figcaption>{e(caption)}</figcaption>\n{svg}</figure>\n" for caption, svg in figures)
    style = (  # compact enough for 1280 px: headers wrap, an interval goes under its mean, long names break
        "body{font-family:system-ui,sans-serif;margin:1.5em;max-width:80em;color:#222}"
        "table{border-collapse:collapse;font-size:13px}"
        "th,td{border:1px solid #ccc;padding:3px 6px;text-align:right;white-space:nowrap}"
        "th{white-space:normal;vertical-align:bottom}td:nth-child(2){white-space:normal;overflow-wrap:anywhere}"
        ".ci{color:#555;font-size:12px}"
        "th:nth-child(-n+3),td:nth-child(-n+3){text-align:left}th{background:#f3f3f3}"
        "figure{display:inline-block;margin:1em 1em 0 0;vertical-align:top}figcaption{font-weight:600}"
        "svg{max-width:100%;height:auto}.wide{overflow-x:auto}"
        ".verdict{font-size:1.1em;background:#f6f8fa;padding:1em;border-left:4px solid #4a7}"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
        f'<link rel="icon" href="data:,"><style>{style}</style></head><body>\n<h1>{e(title)}</h1>\n'
        f'<h2>Verdict</h2>\n<p class="verdict" id="verdict">{e(text)}</p>\n'
        f'<div class="wide"><table id="results"><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table></div>\n'
        f"<p>{e(note)} Extraction seconds are those of the extraction the "
        "variant's features came from (shared by the variants that use the same encoder and data). Steps: optimizer "
        f"steps of the run kept; {e(CONVERGED_NOTE)}</p>\n"
        f'<div id="plots">\n{plots}</div>\n</body></html>\n'
    )


def write_report(directory: str | Path) -> Report:
    """Rebuild report.md, report.html and the folder's model card (README.md) from its results.jsonl alone."""
    directory = Path(directory)
    rows = read_rows(directory / "results.jsonl")
    report = build_report(rows, f"lmtransfer compare: {directory.name}", directory)
    atomic_write_text(directory / "report.md", report.markdown)
    atomic_write_text(directory / "report.html", report.html)
    card = comparison_card(directory, table_markdown(report.summaries), report.verdict, report.summaries)
    atomic_write_text(directory / "README.md", card)
    write_winner(rows, report.summaries, directory)
    report.directory = directory
    return report

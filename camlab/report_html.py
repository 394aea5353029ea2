"""One self-contained HTML report (plots embedded as PNG data URIs, tables, a pass/fail budget table).

Used by ``make demo``; the page opens from disk with no network (no external CSS/JS), so headless Chromium renders it.
"""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from camlab.io_utils import atomic_write_text


@dataclass
class Section:
    title: str
    text: str = ""
    figures: list[tuple[str, bytes]] = field(default_factory=list)  # (caption, PNG bytes)
    tables: list[tuple[str, Sequence[str], Sequence[Sequence[Any]]]] = field(default_factory=list)


def figure_png(fig: Any, dpi: int = 90) -> bytes:
    """A matplotlib figure as PNG bytes (and closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "—"
    return html.escape(str(value))


def _table(caption: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], css: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cls = ""
        if css == "budget":
            cls = {"PASS": ' class="pass"', "NOT ASSESSED": ' class="na"'}.get(str(row[-1]), ' class="fail"')
        body.append(f"<tr{cls}>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f'<table class="{css}">{cap}<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;max-width:1200px;color:#222}
h1{margin-bottom:0} .sub{color:#666;margin-top:4px}
section{border-top:1px solid #ddd;margin-top:24px;padding-top:8px}
figure{display:inline-block;margin:8px;vertical-align:top} figure img{max-width:560px;border:1px solid #eee}
figcaption{font-size:13px;color:#555}
table{border-collapse:collapse;margin:8px 0;font-size:14px} td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
caption{text-align:left;font-weight:600;padding:4px 0}
tr.pass td:last-child{background:#d7f5d7;font-weight:600} tr.fail td:last-child{background:#f9d0d0;font-weight:600}
tr.na td:last-child{background:#eee;color:#555;font-weight:600} tr.fail td{color:#900}
.verdict{font-size:20px;font-weight:700} .verdict.pass{color:#0a7a0a} .verdict.fail{color:#b00000}
"""


def write_report(path: Path, title: str, subtitle: str, budget_rows: Sequence[Sequence[Any]],
                 sections: Sequence[Section]) -> Path:
    """Write the page. ``budget_rows``: (check, metric, value, bound, unit, reason, PASS|FAIL|NOT ASSESSED); the
    reason says why a check failed or was not assessed. PASS when no row fails and at least one passes."""
    statuses = [str(r[-1]) for r in budget_rows]
    n_pass, n_na = statuses.count("PASS"), statuses.count("NOT ASSESSED")
    verdict = "PASS" if n_pass and n_pass + n_na == len(statuses) else "FAIL"
    na_text = f", {n_na} not assessed at demo scale" if n_na else ""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1><p class='sub'>{html.escape(subtitle)}</p>",
             f"<section id='budget'><h2>Budget</h2><p class='verdict {verdict.lower()}'>Budget: {verdict} "
             f"({n_pass}/{len(budget_rows)} checks pass{na_text})</p>",
             _table("", ["check", "metric", "value", "bound", "unit", "reason", "result"], budget_rows,
                    css="budget"),
             "</section>"]
    for i, sec in enumerate(sections):
        parts.append(f"<section id='s{i}'><h2>{html.escape(sec.title)}</h2>")
        if sec.text:
            parts.append(f"<p>{html.escape(sec.text)}</p>")
        for caption, headers, rows in sec.tables:
            parts.append(_table(caption, headers, rows))
        for caption, png in sec.figures:
            data = base64.b64encode(png).decode("ascii")
            parts.append(f"<figure><img class='plot' alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        parts.append("</section>")
    # after load, the page records how many plots decoded (headless browser tests read it from the DOM)
    parts.append("<script>window.addEventListener('load',function(){var i=document.querySelectorAll('img.plot');"
                 "var ok=0;i.forEach(function(x){if(x.complete&&x.naturalWidth>0)ok++;});"
                 "document.body.setAttribute('data-plots',ok+'/'+i.length);"
                 "document.body.setAttribute('data-budget-rows',"
                 "document.querySelectorAll('#budget tbody tr').length);});</script>")
    parts.append("</body></html>")
    atomic_write_text(Path(path), "\n".join(parts))
    return Path(path)

"""Rendering: one self-contained, static HTML page (figures embedded as PNG, no script)."""

from __future__ import annotations

import base64
import html
import io
import json
import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..experiments import Claim

# Figures are drawn at twice the CSS pixel density (sharp on high-density
# screens) and shown at their natural size: wide figures scroll sideways
# inside their own box rather than being squeezed to the text width.
_DPI = 192
_CSS_PX_PER_INCH = 96

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
padding:0 1.5em;color:#222;line-height:1.45;max-width:1500px}
.text{max-width:62em}
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
h3{font-size:1.05em}
table{border-collapse:collapse;font-size:.82em;margin:.5em 0 1em}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:right;vertical-align:top}
th{background:#f3f3f3}td.l,th.l{text-align:left}
.tw{overflow-x:auto;max-width:100%}
figure{margin:1em 0;overflow-x:auto;max-width:100%}
figure img{max-width:none;border:1px solid #eee;display:block}
figcaption{font-size:.88em;color:#444;max-width:62em;margin-top:.4em}
details{margin:.5em 0}summary{cursor:pointer;color:#225}
pre{background:#f7f7f7;padding:.5em;font-size:.8em;overflow-x:auto}
.note{color:#555;font-size:.9em}
table.claims{font-size:.88em;max-width:100%}table.claims td{text-align:left}
.verdict{font-weight:600;white-space:nowrap}
.v-confirmed{color:#1a6b1a}.v-not-confirmed{color:#a11}.v-open{color:#8a6100}
"""

REFERENCES = (
    ("Town et al. 2026", "Town, Boursier, Lewis, Englert, Lazic (2026), “Mildly Overparameterized "
     "ReLU Networks on Orthogonal Data: Incremental Learning and Implicit Bias”, arXiv 2605.27097: "
     "the paper whose claims this report tests."),
    ("Dana et al. 2025", "Dana, Bach, Pillaud-Vivien (2025), arXiv 2502.16977: width of order "
     "log n suffices on weakly interacting high-dimensional data."),
    ("Boursier et al. 2022", "Boursier, Pillaud-Vivien, Flammarion (2022), arXiv 2206.00939: "
     "gradient flow on orthogonal inputs from small initialisation."),
    ("reluflow (new finding)", "A result measured by reluflow that no paper above states."),
)


def esc(s: Any) -> str:
    return html.escape(str(s))


def fmt(v: Any) -> str:
    """A table cell: floats to 4 significant digits, non-finite as a dash."""
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if isinstance(v, float | np.floating):
        return f"{v:.4g}" if math.isfinite(v) else "–"
    return esc(v)


def table(df: pd.DataFrame | None, max_rows: int = 400) -> str:
    """An HTML table (text columns left-aligned), cut at ``max_rows`` with a note."""
    if df is None or df.empty:
        return "<p class='note'>(no rows)</p>"
    d = df.head(max_rows)
    head = "".join(f"<th>{esc(c)}</th>" for c in d.columns)
    body = []
    for row in d.itertuples(index=False):
        cells = []
        for v in row:
            cls = " class='l'" if isinstance(v, str) else ""
            cells.append(f"<td{cls}>{fmt(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = (f"<p class='note'>{len(df) - max_rows} more rows in the CSV.</p>"
            if len(df) > max_rows else "")
    return (f"<div class='tw'><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>{more}")


def named_table(title: str, df: pd.DataFrame | None, open_rows: int = 25) -> str:
    """A titled table; one longer than ``open_rows`` rows is folded (click to open)."""
    if df is not None and len(df) > open_rows:
        return (f"<details class='table'><summary><b>{esc(title)}</b> ({len(df)} rows)</summary>"
                f"{table(df)}</details>")
    return f"<h3>{esc(title)}</h3>{table(df)}"


def png(fig: Any) -> bytes:
    """The figure as PNG bytes (at twice the CSS pixel density), cropped to its content."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    return buf.getvalue()


def figure(name: str, raw: bytes, caption: str) -> str:
    """An embedded PNG figure shown at its natural size, with its caption."""
    w, h = struct.unpack(">II", raw[16:24])  # the PNG header's IHDR width and height
    scale = _CSS_PX_PER_INCH / _DPI
    w, h = round(w * scale), round(h * scale)
    data = base64.b64encode(raw).decode("ascii")
    return (f"<figure><img id='fig-{esc(name)}' alt='{esc(name)} figure' width='{w}' "
            f"height='{h}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def details(summary: str, body: str) -> str:
    return f"<details><summary>{esc(summary)}</summary>{body}</details>"


def pre_json(obj: Any) -> str:
    return "<pre>" + esc(json.dumps(obj, indent=1, sort_keys=True, default=str)) + "</pre>"


def claims_table(claims: Sequence[Claim]) -> str:
    """The "Claims and verdicts" table: source, claim, measured, verdict, evidence."""
    if not claims:
        return ("<p class='note'>The store holds no experiment whose claims reluflow tests "
                "(see docs/experiments.md).</p>")
    rows = []
    for c in claims:
        v = c.verdict.replace(" ", "-")
        rows.append(
            "<tr class='claim'>"
            f"<td class='l'>{esc(c.source)}</td><td class='l'>{esc(c.claim)}</td>"
            f"<td class='l'>{esc(c.measured)}</td>"
            f"<td class='l'><span class='verdict v-{v}' title='{esc(c.rule)}'>"
            f"{esc(c.verdict)}</span></td><td class='l'>{esc(c.evidence)}</td></tr>")
    head = "".join(f"<th class='l'>{h}</th>"
                   for h in ("source", "claim", "measured (95% or s.e.)", "verdict", "evidence"))
    rules = "".join(f"<li>{esc(c.claim.split(':')[0][:90])}: {esc(c.rule)}</li>"
                    for c in claims if c.rule)
    return (f"<div class='tw'><table class='claims' id='claims-table'><thead><tr>{head}</tr>"
            f"</thead><tbody>{''.join(rows)}</tbody></table></div>"
            + details("how each verdict is decided", f"<ul class='note'>{rules}</ul>"))


def references(claims: Sequence[Claim]) -> str:
    used = {c.source for c in claims} | {"Town et al. 2026"}
    items = "".join(f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in REFERENCES if k in used)
    return f"<h3>References</h3><ul class='note'>{items}</ul>"


def page(title: str, parts: Sequence[str]) -> str:
    return "\n".join([
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
        *parts,
        "</body></html>",
    ])


def paragraph(text: str, cls: str = "text") -> str:
    return f"<p class='{cls}'>{esc(text)}</p>"


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars as Python numbers, NaN/inf as None, frames as records."""
    if isinstance(obj, pd.DataFrame):
        return jsonable(obj.to_dict(orient="records"))
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj

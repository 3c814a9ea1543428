"""The report of a results store: claims and verdicts, figures, tables, provenance (HTML).

:func:`build_report` reads a :class:`~reluflow.store.ResultsStore`, hands the
rows of every experiment it recognises (:data:`reluflow.experiments.EXPERIMENTS`)
to that experiment's analysis, and renders what the experiment returns
(claims, figures, tables, summary quantities) into one self-contained HTML
page, with a generic account of everything the store holds
(:mod:`reluflow.report.overview`): any store gets a report, a sweep's as well
as ``reluflow reproduce``'s. Nothing is recomputed: ``reluflow reproduce`` and
``reluflow report`` share this code path, so the report of a store is the
report of the run.

Statistics live with the experiments (:mod:`reluflow.experiments`); this
package only renders.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .._version import __version__
from ..errors import InputError
from ..experiments import EXPERIMENTS, Claim
from . import _html as H
from ._provenance import provenance
from .overview import analyse_overview, overview_figures, overview_tables

__all__ = ["Report", "build_report"]

SUMMARY_COLUMNS = ["figure", "quantity", "value", "error", "error_kind", "runs", "seeds",
                   "configuration", "detail"]
CLAIM_COLUMNS = ["experiment", "source", "claim", "measured", "verdict", "evidence", "rule"]


@dataclass(frozen=True)
class Report:
    """What :func:`build_report` produced.

    Attributes:
        html: the HTML file. figures: the figure files written (PDF and PNG).
        summary: the summary table (figure, quantity, value, error, runs, seeds, configuration).
        claims: the claims and verdicts (one row per claim, columns ``CLAIM_COLUMNS``).
        analyses: per recognised experiment, its analysis dict.
        provenance: per experiment in the store, the provenance dict.
        skipped: experiments in the store that were not analysed, with the reason.
        overview: the generic account of the store (:func:`overview.analyse_overview`).
        figure_objects: figure name -> matplotlib figure (only with ``keep_figures``).
    """

    html: Path
    figures: tuple[Path, ...]
    summary: pd.DataFrame
    claims: pd.DataFrame
    analyses: dict[str, dict[str, Any]] = field(default_factory=dict)
    provenance: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    overview: dict[str, Any] = field(default_factory=dict)
    figure_objects: dict[str, Any] = field(default_factory=dict)


def _open(store: Any) -> tuple[Any, Path, bool]:
    from ..store import ResultsStore

    if isinstance(store, ResultsStore):
        return store, Path(getattr(store, "path", ".")), False
    path = Path(store)
    if not path.is_file():
        raise InputError(
            f"store must be an existing results store, got {str(path)!r} (no such file)")
    return ResultsStore(path, create=False), path, True


def build_report(
    store: Any,
    html_path: str | Path,
    *,
    figures_dir: str | Path | None = None,
    tables_dir: str | Path | None = None,
    plan: dict[str, Any] | None = None,
    keep_figures: bool = False,
) -> Report:
    """Analyse a results store and write the report (and optionally figures and tables).

    Args:
        store: a :class:`~reluflow.store.ResultsStore` or the path of one.
        html_path: the HTML file to write (self-contained: PNGs embedded, no script).
        figures_dir: also write each figure there as PDF and PNG (``None``: do not).
        tables_dir: also write ``summary.csv``, ``claims.csv``, ``summary.json``
            (one object per experiment) and every table as CSV there (``None``: do not).
        plan: the experiment design, shown in the report (optional; ``reluflow
            reproduce`` also writes it as ``reproduce.json`` beside the store,
            where the report finds it).
        keep_figures: keep the matplotlib figures open in the result (tests
            read their data back); otherwise they are closed.

    Returns:
        A :class:`Report`.
    """
    import matplotlib.pyplot as plt

    st, path, own = _open(store)
    if plan is None:
        pj = path.parent / "reproduce.json"
        if pj.exists():
            plan = json.loads(pj.read_text())
    analyses: dict[str, dict[str, Any]] = {}
    prov: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    try:
        frame = st.frame()  # unique columns: a result named like a config key is result_<name>
        if frame.empty:
            raise InputError(f"the store {str(path)!r} holds no runs (nothing to report)")
        for exp, df in frame.groupby("experiment", sort=False):
            prov[str(exp)] = provenance(df)
        for name, ex in EXPERIMENTS.items():
            df = frame[frame["experiment"] == name]
            if df.empty:
                continue
            try:
                analyses[name] = ex.analyse(df.reset_index(drop=True), st.arrays)
            except InputError as e:
                skipped[name] = str(e)
        keys: dict[str, list[str]] = {}
        for (exp, _), d in frame.groupby(["experiment", "dynamics"], sort=False):
            cfg = st.record(d["run_id"].iloc[0]).config  # one run per dynamics: its keys
            keys.setdefault(str(exp), [])
            keys[str(exp)] += [k for k in cfg if k not in keys[str(exp)]]
        overview = analyse_overview(frame, recognised=tuple(analyses), config_keys=keys)
    finally:
        if own:
            st.close()

    figs: dict[str, Any] = {}
    exp_figs: dict[str, dict[str, Any]] = {}
    captions: dict[str, str] = {}
    tables: dict[str, pd.DataFrame] = {}
    claims: list[tuple[str, Claim]] = []
    rows: list[dict[str, Any]] = []
    for name, a in analyses.items():
        ex = EXPERIMENTS[name]
        # every figure stays open until it is written (each is drawn once, for the page
        # and the files) and closed at the end: more than matplotlib's 20 is expected here
        with plt.rc_context({"figure.max_open_warning": 0}):
            exp_figs[name] = ex.figures(a)
        figs.update(exp_figs[name])
        captions.update(ex.captions(a))
        tables.update(ex.tables(a))
        claims += [(name, c) for c in ex.claims(a)]
        p = prov[name]
        for q in ex.quantities(a):
            rows.append({"figure": name, **q, "runs": p["runs"], "seeds": p["seeds"],
                         "configuration": json.dumps(p["configuration"], sort_keys=True,
                                                     default=str)})
    ov_figs = overview_figures(overview)
    figs.update(ov_figs)
    captions.update({k: v for k, v in overview["captions"].items() if k in ov_figs})
    ov_tables = overview_tables(overview)
    tables.update(ov_tables)
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    claims_df = pd.DataFrame([{"experiment": e, **c.as_dict()} for e, c in claims],
                             columns=CLAIM_COLUMNS)

    pngs = {name: H.png(fig) for name, fig in figs.items()}  # drawn once: page and files
    written: list[Path] = []
    if figures_dir is not None:
        fd = Path(figures_dir)
        fd.mkdir(parents=True, exist_ok=True)
        for name, fig in figs.items():
            p = fd / f"{name}.pdf"
            fig.savefig(p, bbox_inches="tight")
            (fd / f"{name}.png").write_bytes(pngs[name])
            written += [p, fd / f"{name}.png"]
    if tables_dir is not None:
        td = Path(tables_dir)
        td.mkdir(parents=True, exist_ok=True)
        summary.to_csv(td / "summary.csv", index=False)
        claims_df.to_csv(td / "claims.csv", index=False)
        doc: dict[str, Any] = {"reluflow": __version__, "store": path.name, "plan": plan,
                               "claims": claims_df.to_dict(orient="records")}
        for name, a in analyses.items():
            ex = EXPERIMENTS[name]
            doc[name] = {
                **ex.results(a),
                "quantities": summary[summary["figure"] == name]
                .drop(columns=["figure", "configuration"]).to_dict(orient="records"),
                "claims": [c.as_dict() for e, c in claims if e == name],
                "provenance": prov[name],
            }
        doc["overview"] = overview["results"]
        (td / "summary.json").write_text(
            json.dumps(H.jsonable(doc), indent=1, default=str, allow_nan=False))
        for name, t in tables.items():
            t.to_csv(td / f"{name}.csv", index=False)

    html_path = Path(html_path)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(
        _render(path, plan, analyses, exp_figs, pngs, captions, tables, ov_tables, summary, claims, prov,
                skipped, overview),
        encoding="utf-8")
    if not keep_figures:
        for fig in figs.values():
            plt.close(fig)
    return Report(html=html_path, figures=tuple(written), summary=summary, claims=claims_df,
                  analyses=analyses, provenance=prov, skipped=skipped, overview=overview,
                  figure_objects=figs if keep_figures else {})


def _render(path, plan, analyses, exp_figs, pngs, captions, tables, ov_tables, summary, claims, prov,
            skipped, overview) -> str:
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    only_claims = [c for _, c in claims]
    counts = {v: sum(c.verdict == v for c in only_claims)
              for v in ("confirmed", "not confirmed", "open")}
    parts = [
        "<h1>reluflow report</h1>",
        H.paragraph(
            f"Built {now} by reluflow {__version__} from the results store {path.name} alone "
            "(nothing recomputed). The mathematics behind each experiment is in the "
            "repository's docs/ (docs/README.md); docs/experiments.md explains every figure, "
            "table and claim.", "note"),
        "<h2 id='claims'>Claims and verdicts</h2>",
        H.paragraph(
            "Each claim of the paper (Town et al. 2026) and of the other papers cited below "
            "that this store can test, with the number that tests it, its uncertainty and a "
            "verdict computed from the runs: confirmed, not confirmed, or open (the data at "
            "this scale cannot tell). Findings of reluflow that no paper states are listed too."
            + (f" Here: {counts['confirmed']} confirmed, {counts['not confirmed']} not "
               f"confirmed, {counts['open']} open." if only_claims else "")),
        H.claims_table(only_claims),
        H.references(only_claims),
    ]
    if len(summary):
        parts += ["<h2 id='summary'>Summary</h2>",
                  H.paragraph("Every number behind a figure, with its error and the runs it "
                              "comes from (summary.csv)."),
                  H.table(summary.drop(columns=["configuration"]))]
    for k, (name, a) in enumerate(analyses.items(), start=1):
        ex = EXPERIMENTS[name]
        parts.append(f"<h2 id='{H.esc(name)}'>{k}. {H.esc(ex.title)}</h2>")
        parts.append(H.paragraph(ex.description))
        for fname in exp_figs[name]:
            parts.append(H.figure(fname, pngs[fname], captions.get(fname, "")))
        parts.append(H.details("provenance", H.pre_json(prov[name])))
        for tname, t in ex.tables(a).items():
            parts.append(H.named_table(tname.replace("_", " "), t))
    parts.append("<h2 id='store'>What the store holds</h2>")
    parts.append(H.paragraph(overview["text"]))
    for name, why in skipped.items():
        parts.append(H.paragraph(f"Experiment {name!r} is in the store but was not analysed: "
                                 f"{why}", "note"))
    for tname, t in ov_tables.items():
        parts.append(H.named_table(overview["table_titles"].get(tname, tname), t))
    for fname in overview["figure_names"]:
        if fname in pngs:
            parts.append(H.figure(fname, pngs[fname], captions.get(fname, "")))
    for exp in overview["generic"]:
        parts.append(H.details(f"provenance of {exp}", H.pre_json(prov[exp])))
    if plan:
        parts.append("<h2 id='design'>Experiment design</h2>")
        parts.append(H.pre_json(plan))
    return H.page("reluflow report", parts)

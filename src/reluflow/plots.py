"""Figures a paper could print (matplotlib, PDF and PNG).

Every function takes results, draws on a new figure, writes it to ``path``
(the suffix picks the format; ``.pdf`` and ``.png`` both work) when one is
given, and returns the :class:`matplotlib.figure.Figure` so that callers and
tests can read back the plotted data.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .limit import LimitResult  # noqa: E402
from .trajectory import Trajectory  # noqa: E402

__all__ = [
    "limit_staircase",
    "plot_bias",
    "plot_by_parameter",
    "plot_directions",
    "plot_neurons_1d",
    "plot_convergence",
    "plot_convergence_threshold",
    "plot_incremental",
    "plot_loss_curves",
    "plot_threshold",
    "plot_trajectory",
    "save_figure",
]

plt.rcParams.update(
    {
        "figure.dpi": 110,
        "savefig.dpi": 200,
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)


def _finish(
    fig: matplotlib.figure.Figure, path: str | Path | None, title: str | None
) -> matplotlib.figure.Figure:
    """Title, tight layout, save (see :func:`save_figure`), return the figure."""
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
    return fig


def save_figure(fig: matplotlib.figure.Figure, path: str | Path | None) -> None:
    """Write ``fig`` to ``path`` (format from the suffix: ``.pdf`` for print, ``.png``); no-op for None."""
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")


def limit_staircase(
    limit: LimitResult, tau_end: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The limit's loss as a step function of τ: ``(tau, loss)`` vertices for ``plt.step(where="post")``."""
    tau = np.concatenate([[0.0], limit.tau])
    loss = np.concatenate([[limit.initial_loss], limit.plateau_loss])
    end = tau_end if tau_end is not None else (tau[-1] * 1.15 if tau[-1] > 0 else 1.0)
    return np.append(tau, max(end, tau[-1])), np.append(loss, loss[-1])


def plot_trajectory(
    traj: Trajectory,
    path: str | Path | None = None,
    *,
    limit: LimitResult | None = None,
    title: str | None = None,
) -> matplotlib.figure.Figure:
    """Loss against τ (top) and every ``|a_j|`` on a log scale (bottom); activation events marked."""
    from .analysis import activation_events

    fig, (ax0, ax1) = plt.subplots(
        2, 1, figsize=(6.0, 5.0), sharex=True, gridspec_kw={"height_ratios": [1, 1.3]}
    )
    small = traj.log10_scale < 0
    x = traj.tau if small else traj.t
    ax0.plot(
        x, traj.loss, color="C0", lw=1.4, label=f"{traj.dynamics}, λ = {_fmt_lam(traj.log10_scale)}"
    )
    if limit is not None:
        st, sl = limit_staircase(limit, tau_end=float(x[-1]))
        ax0.step(st, sl, where="post", color="k", ls="--", lw=1.0, label="λ → 0 limit")
    ax0.set_ylabel("training loss")
    ax0.set_yscale("symlog", linthresh=max(1e-4, float(traj.loss.min()) or 1e-4))
    ax0.legend(frameon=False, loc="upper right")
    # log10 |a_j| from the exact log-scales (|a_j| itself underflows below 1e-308)
    ax1.plot(x, traj.log_abs_a / np.log(10.0), lw=0.9)
    ax1.set_ylabel("log₁₀ |a_j|")
    ax1.set_xlabel("τ = t / log(1/λ)" if small else "t")
    ev = activation_events(traj)
    for tau_j in ev["tau"] if small else ev["t"]:
        for ax in (ax0, ax1):
            ax.axvline(tau_j, color="0.7", lw=0.6, ls=":")
    return _finish(fig, path, title)


def plot_convergence(
    trajs: Sequence[Trajectory],
    limit: LimitResult,
    path: str | Path | None = None,
    *,
    title: str | None = None,
    summary: Any = None,
) -> matplotlib.figure.Figure:
    """The flow at several λ settling onto the λ → 0 limit.

    (a) loss staircases against τ, the limit's dashed; (b) every neuron's log-scale
    ``p_j = ln|a_j| / ln(1/λ)`` (exact at any λ), the limit's event times dashed;
    (c) with ``summary`` (:attr:`reluflow.compare.Comparison.summary`): the gaps to
    the limit (largest activation-time gap in τ, relative ‖θ‖² gap) against
    ``ln(1/λ)`` on log-log axes, with the slope −1 of a ``1/ln(1/λ)`` decay.
    """
    panels = 3 if summary is not None else 2
    fig, axes = plt.subplots(panels, 1, figsize=(6.0, 2.6 * panels + 0.3))
    ax0, ax1 = axes[0], axes[1]
    ax1.sharex(ax0)
    tau_end = max(float(tr.tau[-1]) for tr in trajs)
    cmap = plt.get_cmap("viridis")
    for k, tr in enumerate(trajs):
        c = cmap(k / max(1, len(trajs) - 1) * 0.85)
        ax0.plot(tr.tau, tr.loss, color=c, lw=1.2, label=f"λ = {_fmt_lam(tr.log10_scale)}")
        ax1.plot(tr.tau, tr.log_scale, color=c, lw=0.6)
    st, sl = limit_staircase(limit, tau_end=tau_end)
    ax0.step(st, sl, where="post", color="k", ls="--", lw=1.2, label="λ → 0 limit")
    for tau_k in limit.tau:
        ax1.axvline(tau_k, color="k", ls="--", lw=0.5)
    ax0.set_ylabel("training loss")
    ax0.legend(frameon=False, fontsize=7, ncol=2)
    ax1.set_ylabel("p_j = ln|a_j| / ln(1/λ)")
    ax1.set_xlabel("τ = t / ln(1/λ)")
    ax1.set_ylim(-1.3, 0.5)
    if summary is not None:
        ax2 = axes[2]
        x = -np.asarray(summary["log10_scale"], float) * np.log(10.0)
        for col, lab, mk in (
            ("max_tau_gap", "max |τ_flow − τ_limit|", "o"),
            ("norm_gap", "|‖θ‖²_flow − ‖θ‖²_limit| / ‖θ‖²_limit", "s"),
        ):
            yv = np.asarray(summary[col], float)
            ok = np.isfinite(yv) & (yv > 0)
            ax2.loglog(x[ok], yv[ok], marker=mk, lw=1.0, label=lab)
        if len(x):
            ref = np.array([x.min(), x.max()])
            y0 = np.nanmax(np.asarray(summary["max_tau_gap"], float))
            if np.isfinite(y0) and y0 > 0:
                ax2.loglog(ref, y0 * ref[0] / ref, color="0.5", ls=":", lw=1.0, label="∝ 1/ln(1/λ)")
        ax2.set_xlabel("ln(1/λ)")
        ax2.set_ylabel("gap to the limit")
        ax2.legend(frameon=False, fontsize=7)
    return _finish(fig, path, title)


def plot_by_parameter(
    table: pd.DataFrame,
    x: str,
    series: Sequence[str] = (),
    path: str | Path | None = None,
    *,
    title: str | None = None,
) -> matplotlib.figure.Figure:
    """Key results of a sweep against one parameter: P(interpolation) and the norm ratio.

    Left: ``p_interp`` with its Wilson interval (``p_lo``, ``p_hi``) against
    ``x`` (and ``p_exact`` dashed where finite), one line per combination of the ``series`` columns (at most 10; the
    rest are in the table). Right: ``ratio_mean ± ratio_se`` where the table has
    it (interpolating runs on orthogonal data), otherwise ``final_loss_median``
    (log scale when it spans more than a factor 10). A logarithmic ``x`` axis is
    used when ``x`` spans more than a factor 20. Series with no value of ``x``
    (a parameter that does not apply to them, e.g. ``lr`` for the flow) are
    named in a note instead of drawn.

    Args:
        table: one row per parameter combination (``report.overview``'s table).
        x: the column on the horizontal axis. series: the columns that label the lines.
        path: where to write the figure. title: figure title.

    Gids: ``p-{label}``, ``p-exact-{label}`` and ``right-{label}`` for each series label.
    """
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10.0, 3.8))
    groups = list(table.groupby(list(series), sort=True)) if series else [((), table)]
    use_ratio = bool(np.isfinite(table["ratio_mean"].to_numpy(float)).any())
    cmap = plt.get_cmap("viridis")
    markers = "osD^vP*Xh<>"
    hidden = []  # series without any value of x (x does not apply to them)
    for i, (key, d) in enumerate(groups[:10]):
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{s} = {k:g}" if isinstance(k, float) else f"{s} = {k}"
                          for s, k in zip(series, key, strict=True)) or "all runs"
        d = d[d[x].notna()].sort_values(x)
        if d.empty:
            hidden.append(label)
            continue
        c = cmap(0.85 * i / max(1, min(len(groups), 10) - 1))
        mk = markers[i % len(markers)]
        yerr = np.clip(np.vstack([d["p_interp"] - d["p_lo"], d["p_hi"] - d["p_interp"]]), 0, 1)
        eb = ax0.errorbar(d[x], d["p_interp"], yerr=yerr, fmt=mk + "-", ms=4, color=c, lw=1.0,
                          capsize=2, label=label)
        eb.lines[0].set_gid(f"p-{label}")
        if "p_exact" in d and np.isfinite(d["p_exact"].to_numpy(float)).any():
            (ln,) = ax0.plot(d[x], d["p_exact"], color=c, lw=0.9, ls="--")
            ln.set_gid(f"p-exact-{label}")
        if use_ratio:
            eb = ax1.errorbar(d[x], d["ratio_mean"], yerr=d["ratio_se"], fmt=mk + "-", ms=4,
                              color=c, lw=1.0, capsize=2, label=label)
            eb.lines[0].set_gid(f"right-{label}")
        else:
            (ln,) = ax1.plot(d[x], d["final_loss_median"], mk + "-", ms=4, color=c, lw=1.0,
                             label=label)
            ln.set_gid(f"right-{label}")
    xs = table[x].to_numpy(float)
    for ax in (ax0, ax1):
        if np.all(xs > 0) and xs.max() / xs.min() > 20:
            ax.set_xscale("log")
        ax.set_xlabel(x)
    ax0.set_ylabel("P(interpolation)")
    ax0.set_ylim(-0.04, 1.04)
    ax0.set_title("fraction of interpolating runs (Wilson 95%)", fontsize=8)
    if use_ratio:
        ax1.set_ylabel("‖θ‖² / min ‖θ‖²")
        ax1.set_title("ratio to the minimal norm (interpolating runs, ± s.e.)", fontsize=8)
    else:
        ax1.set_ylabel("final loss (median)")
        losses = table["final_loss_median"].to_numpy(float)
        losses = losses[np.isfinite(losses) & (losses > 0)]
        if losses.size and losses.max() / losses.min() > 10:
            ax1.set_yscale("log")
        ax1.set_title("final training loss", fontsize=8)
    handles, labels = ax0.get_legend_handles_labels()
    if len(groups) > 1:
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
                   fontsize=7)
    notes = [f"first 10 of {len(groups)} series"] if len(groups) > 10 else []
    if hidden:
        notes.append(f"{x} does not apply to: " + "; ".join(hidden))
    if notes:
        ax0.text(0.01, 1.08, "; ".join(notes), transform=ax0.transAxes, fontsize=7)
    return _finish(fig, path, title)


def _fmt_lam(log10: float) -> str:
    from ._validate import format_scale

    return format_scale(log10)


# --------------------------------------------------------------------------- reproduce figures
#
# The three reference figures of ``reluflow reproduce`` take plain arrays and
# tables (what a results store holds), never live result objects, so that the
# report can redraw them from stored runs alone. Every data series carries a
# ``gid`` naming what it shows (``"flow-loss-1e-08"``, ``"limit-mc-n64"``, ...):
# tests read the series back by gid and compare them with the store.

_LOG2 = "log₂ n"


def _lam_label(scale: float) -> str:
    return f"λ = {scale:.0e}"


def plot_incremental(
    flows: Sequence[dict],
    limit: dict,
    path: str | Path | None = None,
    *,
    title: str | None = None,
) -> matplotlib.figure.Figure:
    """Incremental learning: the flow's loss staircase and every ``|a_j|`` at several λ, on the limit's.

    Top panel: the training loss against ``τ = t / log(1/λ)`` for each λ, with
    the jump process's staircase (docs/limit.md: plateaus ``(1/2n) Σ_{i ∉ F} y_i²``)
    dashed. Below, one panel per λ: every ``|a_j(τ)|`` on a log scale, one
    colour per neuron, the flow's activation events (dotted, in their neuron's
    colour) and the limit's event times (dashed grey); at the right edge, the
    limit's final ``|a_j|`` as ◀ marks. A key on the right names each neuron's
    colour (and whether the limit activates it) and each line style and marker.

    Args:
        flows: one dict per λ with ``scale``, ``tau``, ``loss``, ``a_abs`` (T, m),
            ``event_tau`` and ``event_neuron``.
        limit: dict with ``tau``, ``plateau_loss``, ``initial_loss``, ``a`` (m,)
            and ``event_neuron``.
        path: where to write the figure (``None``: do not write).
        title: figure title.

    Gids: ``flow-loss-{λ:g}``, ``flow-a-{λ:g}-{j}``, ``limit-staircase``,
    ``flow-event-{λ:g}-{j}``, ``limit-event-{k}``, ``key-neurons``, ``key-styles``.
    """
    from matplotlib.lines import Line2D

    flows = sorted(flows, key=lambda f: -float(f["scale"]))
    k = len(flows)
    fig, axes = plt.subplots(
        k + 1,
        1,
        figsize=(9.0, 2.2 + 1.45 * k),
        sharex=True,
        gridspec_kw={"height_ratios": [1.6] + [1.0] * k},
    )
    axes = np.atleast_1d(axes)
    ax0 = axes[0]
    cmap = plt.get_cmap("viridis")
    tau_end = max([float(np.max(f["tau"])) for f in flows] + [0.0])
    lim_tau = np.asarray(limit["tau"], dtype=float)
    if lim_tau.size:  # the flows run on long after the last event: show up to 1.3 x its time
        tau_end = min(tau_end, float(lim_tau[-1]) * 1.3) if tau_end > 0 else lim_tau[-1] * 1.3
    for i, f in enumerate(flows):
        lam = float(f["scale"])
        c = cmap(i / max(1, k - 1) * 0.85)
        (ln,) = ax0.plot(f["tau"], f["loss"], color=c, lw=1.3, label=_lam_label(lam))
        ln.set_gid(f"flow-loss-{lam:g}")
    st = np.concatenate([[0.0], lim_tau])
    sl = np.concatenate([[float(limit["initial_loss"])], np.asarray(limit["plateau_loss"], float)])
    st = np.append(st, max(tau_end, st[-1]))
    sl = np.append(sl, sl[-1])
    (ln,) = ax0.step(st, sl, where="post", color="k", ls="--", lw=1.2, label="λ → 0 limit")
    ln.set_gid("limit-staircase")
    ax0.set_ylabel("training loss")
    ax0.legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    lim_a = np.abs(np.asarray(limit["a"], dtype=float))
    m = int(lim_a.size) if lim_a.size else max(np.asarray(f["a_abs"]).shape[1] for f in flows)
    ncol = plt.get_cmap("tab20")

    def colour(j: int) -> tuple:  # neighbours get different hues: 10 dark ones, then 10 light
        return ncol((2 * j) % 20 + (j // 10) % 2)

    for ax, f in zip(axes[1:], flows, strict=True):
        lam = float(f["scale"])
        a_abs = np.asarray(f["a_abs"], dtype=float)
        for j in range(a_abs.shape[1]):
            (ln,) = ax.plot(f["tau"], a_abs[:, j], color=colour(j), lw=0.8)
            ln.set_gid(f"flow-a-{lam:g}-{j}")
        for tj, nj in zip(f["event_tau"], f["event_neuron"], strict=True):
            vl = ax.axvline(float(tj), color=colour(int(nj)), lw=0.7, ls=":")
            vl.set_gid(f"flow-event-{lam:g}-{int(nj)}")
        for q, tq in enumerate(lim_tau):
            vl = ax.axvline(float(tq), color="0.55", lw=0.6, ls="--")
            vl.set_gid(f"limit-event-{q}")
        for j in np.flatnonzero(lim_a > 0):
            ax.plot([tau_end], [lim_a[j]], marker="<", ms=4, color=colour(int(j)), clip_on=False)
        ax.set_yscale("log")
        ax.set_ylim(max(lam * 1e-2, 1e-300), max(2.0, float(lim_a.max(initial=1.0)) * 2))
        ax.set_ylabel("|a_j|")
        ax.text(0.01, 0.92, _lam_label(lam), transform=ax.transAxes, fontsize=7, va="top")
    axes[-1].set_xlabel("τ = t / log(1/λ)")
    axes[-1].set_xlim(0, tau_end)
    if k:
        # the key: one colour per neuron (with its limit event, if any), then the styles
        order = list(limit.get("event_neuron", []))
        handles = [
            Line2D([], [], color=colour(j), lw=2,
                   label=f"neuron {j}" + (f" (limit event {order.index(j) + 1})"
                                          if j in order else
                                          " (limit: in a tied event)"
                                          if j < lim_a.size and lim_a[j] > 0
                                          else ""))
            for j in range(m)
        ]
        styles = [
            Line2D([], [], color="0.3", lw=0.8, ls=":", label="flow activation (neuron's colour)"),
            Line2D([], [], color="0.55", lw=0.8, ls="--", label="limit event time"),
            Line2D([], [], color="0.3", ls="none", marker="<", ms=4,
                   label="limit's final |a_j| (right edge)"),
        ]
        # the keys sit in a right-hand margin of the figure, not inside an axes, so that
        # the panels keep their spacing whatever the number of neurons
        right = 0.74 if m <= 14 else 0.6
        fig.tight_layout(rect=(0.0, 0.0, right, 0.96 if title else 1.0))
        leg = fig.legend(handles=handles, title="|a_j| colour", fontsize=6.5,
                         title_fontsize=7, frameon=False, loc="upper left",
                         bbox_to_anchor=(right + 0.01, axes[1].get_position().y1),
                         ncol=1 if m <= 14 else 2)
        leg.set_gid("key-neurons")
        leg = fig.legend(handles=styles, fontsize=6.5, frameon=False, loc="lower left",
                         bbox_to_anchor=(right + 0.01, axes[-1].get_position().y0))
        leg.set_gid("key-styles")
        if title:
            fig.suptitle(title)
        save_figure(fig, path)
        return fig
    return _finish(fig, path, title)


def _n_label(n: int) -> str:
    return f"n = $2^{{{int(round(np.log2(n)))}}}$" if n & (n - 1) == 0 else f"n = {n}"


def plot_threshold(
    mc: pd.DataFrame,
    exact: pd.DataFrame,
    boundary: pd.DataFrame,
    fit: dict,
    path: str | Path | None = None,
    *,
    flow: pd.DataFrame | None = None,
    title: str | None = None,
) -> matplotlib.figure.Figure:
    """Interpolation threshold: P(interpolation) over ``(n, m)``, its boundary and the collapse.

    (a) One small panel per ``n``: P against ``m``, Monte Carlo of the limit
    (points with Wilson intervals), the exact formula (docs/limit.md, line)
    and the flow at small λ (open squares); one key above all of them.
    (b) The Monte Carlo P over the ``(log₂ n, m)`` grid with the measured and
    exact 50% widths and the fitted boundary ``m = c log₂ n + b``. (c) The
    curves against ``m / log₂ n``: they collapse (key: ``n`` by colour).

    Args:
        mc: limit Monte Carlo, one row per ``(n, m)``: ``n, m, trials, p, lo, hi``.
        exact: exact curve, rows ``n, m, p`` (every integer ``m`` of the range).
        boundary: rows ``n, m50_mc, m50_exact`` (50% widths).
        fit: ``c`` and ``c_se`` (slope of ``m50`` against ``log₂ n``), ``b``.
        flow: the flow's Monte Carlo, same columns as ``mc`` (optional).
        path: where to write the figure. title: figure title.

    Gids: ``limit-mc-n{n}``, ``exact-n{n}``, ``flow-mc-n{n}``, ``boundary-fit``,
    ``m50-mc``, ``m50-exact``, ``collapse-mc-n{n}``, ``collapse-exact-n{n}``.
    """
    from matplotlib.lines import Line2D

    ns = sorted(int(v) for v in mc["n"].unique())
    per_row = min(len(ns), 7)
    rows = -(-len(ns) // per_row)
    fig = plt.figure(figsize=(max(12.0, 2.1 * per_row), 2.0 * rows + 4.4))
    gs = fig.add_gridspec(rows + 1, 1, height_ratios=[1.0] * rows + [2.1], hspace=0.55)
    top = gs[:rows].subgridspec(rows, per_row, wspace=0.16, hspace=0.5)
    bottom = gs[rows].subgridspec(1, 2, wspace=0.28, width_ratios=[1.1, 1.0])
    ax1 = fig.add_subplot(bottom[0])
    ax2 = fig.add_subplot(bottom[1])
    cmap = plt.get_cmap("plasma")
    lam = (f", λ = {float(flow['scale'].iloc[0]):.0e}"
           if flow is not None and len(flow) and "scale" in flow else "")

    def colour(n: int) -> tuple:
        return cmap(0.85 * ns.index(n) / max(1, len(ns) - 1))

    first = None
    for i, n in enumerate(ns):
        ax = fig.add_subplot(top[i // per_row, i % per_row], sharey=first)
        first = first or ax
        c = colour(n)
        d = mc[mc["n"] == n].sort_values("m")
        yerr = np.clip(np.vstack([d["p"] - d["lo"], d["hi"] - d["p"]]), 0, 1)
        eb = ax.errorbar(d["m"], d["p"], yerr=yerr, fmt="o", ms=3, color=c, lw=0.8, capsize=1.5)
        eb.lines[0].set_gid(f"limit-mc-n{n}")
        e = exact[exact["n"] == n].sort_values("m")
        (ln,) = ax.plot(e["m"], e["p"], color="k", lw=0.9)
        ln.set_gid(f"exact-n{n}")
        if flow is not None and len(flow):
            fd = flow[flow["n"] == n].sort_values("m")
            if len(fd):
                fyerr = np.clip(np.vstack([fd["p"] - fd["lo"], fd["hi"] - fd["p"]]), 0, 1)
                eb = ax.errorbar(fd["m"], fd["p"], yerr=fyerr, fmt="s", ms=5, mfc="none",
                                 color="C2", lw=0.6, capsize=1.5)
                eb.lines[0].set_gid(f"flow-mc-n{n}")
        ax.set_title(_n_label(n), fontsize=8, color=c)
        ax.set_ylim(-0.05, 1.05)
        ax.tick_params(labelsize=7)
        if i % per_row:
            ax.tick_params(labelleft=False)
        else:
            ax.set_ylabel("P(interpolation)", fontsize=8)
        if i // per_row == rows - 1 or i + per_row >= len(ns):
            ax.set_xlabel("width m", fontsize=8)
        x = d["m"] / np.log2(n)
        eb = ax2.errorbar(x, d["p"], yerr=yerr, fmt="o", ms=3, color=c, lw=0.8, capsize=1.5,
                          label=_n_label(n))
        eb.lines[0].set_gid(f"collapse-mc-n{n}")
        (ln,) = ax2.plot(e["m"] / np.log2(n), e["p"], color=c, lw=0.9)
        ln.set_gid(f"collapse-exact-n{n}")
    key = [
        Line2D([], [], color="0.3", marker="o", ms=3, ls="none",
               label="limit, Monte Carlo (Wilson 95%)"),
        Line2D([], [], color="k", lw=0.9, label="exact formula"),
    ]
    if lam:
        key.append(Line2D([], [], color="C2", marker="s", ms=5, mfc="none", ls="none",
                          label=f"flow{lam}"))
    fig.legend(handles=key, loc="upper center", ncol=len(key), frameon=False, fontsize=8,
               bbox_to_anchor=(0.5, 1.0))
    fig.text(0.01, 1.0, "(a) P(interpolation) against m, one panel per n", fontsize=9,
             va="top")
    # (b) the MC probability on the (log2 n, m) grid, one square per cell
    log2n = np.log2(np.array(ns, dtype=float))
    sc = ax1.scatter(np.log2(mc["n"].astype(float)), mc["m"], c=mc["p"], cmap="viridis",
                     vmin=0, vmax=1, marker="s", s=60 if len(mc) < 150 else 22,
                     edgecolors="none")
    sc.set_gid("limit-mc-grid")
    fig.colorbar(sc, ax=ax1, label="P (limit MC)", fraction=0.05)
    dx = 0.5
    b = boundary.sort_values("n")
    (ln,) = ax1.plot(np.log2(b["n"]), b["m50_mc"], "o", mfc="w", ms=5, mec="k", ls="none",
                     label="50% width (MC)")
    ln.set_gid("m50-mc")
    xs = np.linspace(log2n[0] - dx, log2n[-1] + dx, 50)
    (ln,) = ax1.plot(
        xs, fit["c"] * xs + fit.get("b", 0.0), color="C3", lw=1.2, ls="--",
        label=f"fit m = {fit['c']:.2f}({fit['c_se']:.2f}) log₂ n"
        + (f" {fit['b']:+.2f}" if fit.get("b") else ""))
    ln.set_gid("boundary-fit")
    if "m50_exact" in b:
        (ln,) = ax1.plot(np.log2(b["n"]), b["m50_exact"], "x", color="k", ms=5, ls="none",
                         label="50% width (exact)")
        ln.set_gid("m50-exact")
    ax1.set_xlabel(_LOG2)
    ax1.set_ylabel("width m")
    ax1.set_title("(b) P over (n, m); boundary m ≈ c log₂ n", fontsize=8)
    ax1.legend(frameon=True, fontsize=7, loc="upper left")
    ax2.set_xlabel("m / log₂ n")
    ax2.set_ylabel("P(interpolation)")
    ax2.set_title("(c) collapse under m → m / log₂ n (points: MC, lines: exact)", fontsize=8)
    ax2.legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        fig.suptitle(title, y=1.04)
    save_figure(fig, path)
    return fig


def plot_bias(
    points: pd.DataFrame,
    fits: dict,
    ratio_limit: dict,
    path: str | Path | None = None,
    *,
    title: str | None = None,
) -> matplotlib.figure.Figure:
    """Implicit bias: ``‖θ‖²`` of the learned interpolator against ``n``, beside the minimal norm.

    (a) Log-log: mean ``‖θ‖²`` of the limit (●) and the flow at small λ (□)
    with standard errors, the minimal interpolating norm (docs/limit.md, ×), and
    the fitted power laws ``‖θ‖² ∝ n^slope`` (slope ± standard error in the
    legend). (b) The ratio ``‖θ‖² / min ‖θ‖²`` with 95% bootstrap intervals, its
    apparent limit as ``n`` grows (band), and for reference ``1 + √2``: the
    ratio if each activating neuron fitted exactly half of the remaining
    same-sign samples (``Σ_{k≥1} 2^(−k/2) = 1 + √2``).

    Args:
        points: one row per ``(dynamics, n)``: ``dynamics, n, runs, norm_sq,
            norm_sq_se, min_norm_sq, ratio, ratio_lo, ratio_hi``.
        fits: ``{name: {"slope", "slope_se", "intercept"}}`` for ``limit``,
            ``flow`` and ``min_norm`` (log-log least squares), and optionally
            ``limit_large_n`` / ``flow_large_n`` (with ``n_from``): the fit on large ``n``.
        ratio_limit: ``value``, ``lo``, ``hi`` and ``n_min`` (the ``n`` from which
            it is estimated).
        path: where to write the figure. title: figure title.

    Gids: ``norm-{dynamics}``, ``min-norm``, ``fit-{name}``, ``ratio-{dynamics}``,
    ``ratio-limit``.
    """
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11.0, 4.0))
    style = {"limit": ("o", "C0", "limit (λ → 0)"), "flow": ("s", "C3", "flow")}
    for dyn, (mk, c, lab) in style.items():
        d = points[points["dynamics"] == dyn].sort_values("n")
        if not len(d):
            continue
        if dyn == "flow" and "scale" in d and d["scale"].notna().any():
            lab = f"flow, λ = {float(d['scale'].iloc[0]):.0e}"
        eb = ax0.errorbar(
            d["n"],
            d["norm_sq"],
            yerr=d["norm_sq_se"],
            fmt=mk,
            ms=4,
            mfc="none" if dyn == "flow" else c,
            color=c,
            lw=0.8,
            capsize=1.5,
            label=f"{lab}: slope {fits[dyn]['slope']:.3f} ± {fits[dyn]['slope_se']:.3f}"
            + (
                f"; {fits[dyn + '_large_n']['slope']:.3f} ± {fits[dyn + '_large_n']['slope_se']:.3f}"
                f" for n ≥ {fits[dyn + '_large_n']['n_from']}"
                if dyn + "_large_n" in fits
                else ""
            ),
        )
        eb.lines[0].set_gid(f"norm-{dyn}")
        xs = np.array([d["n"].min(), d["n"].max()], dtype=float)
        (ln,) = ax0.plot(
            xs, np.exp(fits[dyn]["intercept"]) * xs ** fits[dyn]["slope"], color=c, lw=0.8, ls="--"
        )
        ln.set_gid(f"fit-{dyn}")
        big = fits.get(f"{dyn}_large_n")
        if big and np.isfinite(big["slope"]):
            xs = np.array([big["n_from"], d["n"].max()], dtype=float)
            (ln,) = ax0.plot(
                xs, np.exp(big["intercept"]) * xs ** big["slope"], color=c, lw=1.6, alpha=0.5
            )
            ln.set_gid(f"fit-{dyn}-large-n")
        yerr = np.vstack([d["ratio"] - d["ratio_lo"], d["ratio_hi"] - d["ratio"]])
        eb = ax1.errorbar(
            d["n"],
            d["ratio"],
            yerr=yerr,
            fmt=mk,
            ms=4,
            mfc="none" if dyn == "flow" else c,
            color=c,
            lw=0.8,
            capsize=1.5,
            label=lab,
        )
        eb.lines[0].set_gid(f"ratio-{dyn}")
    mn = points[points["dynamics"] == "limit"].sort_values("n")
    if not len(mn):
        mn = points.sort_values("n")
    (ln,) = ax0.plot(
        mn["n"],
        mn["min_norm_sq"],
        "x",
        color="k",
        ms=5,
        label=f"min-norm interpolator: slope {fits['min_norm']['slope']:.3f} "
        f"± {fits['min_norm']['slope_se']:.3f}",
    )
    ln.set_gid("min-norm")
    ax0.set_xscale("log")
    ax0.set_yscale("log")
    ax0.set_xlabel("n")
    ax0.set_ylabel("‖θ‖² of the interpolator")
    ax0.set_title("(a) ‖θ‖² ∝ n^slope (mean ± s.e.)", fontsize=8)
    ax0.legend(frameon=False, fontsize=6.5, loc="upper left")
    if ratio_limit and np.isfinite(ratio_limit.get("value", np.nan)):
        xs = [ratio_limit["n_min"], float(points["n"].max())]
        band = ax1.fill_between(
            xs, [ratio_limit["lo"]] * 2, [ratio_limit["hi"]] * 2, color="C0", alpha=0.15, lw=0
        )
        band.set_gid("ratio-limit-band")
        (ln,) = ax1.plot(
            xs,
            [ratio_limit["value"]] * 2,
            color="C0",
            lw=1.0,
            label=f"apparent limit {ratio_limit['value']:.3f} "
            f"[{ratio_limit['lo']:.3f}, {ratio_limit['hi']:.3f}]",
        )
        ln.set_gid("ratio-limit")
    ref = 1.0 + np.sqrt(2.0)
    ln = ax1.axhline(ref, color="0.5", lw=0.8, ls=":", label="1 + √2 (halving heuristic)")
    ln.set_gid("ratio-reference")
    ax1.set_xscale("log")
    ax1.set_xlabel("n")
    ax1.set_ylabel("‖θ‖² / min ‖θ‖²")
    ax1.set_title("(b) ratio to the minimal norm (95% bootstrap CI)", fontsize=8)
    ax1.legend(frameon=False, fontsize=6.5, loc="lower right")
    return _finish(fig, path, title)


# --------------------------------------------------------------------------- the neurons themselves
#
# Pictures of the weights, from snapshots (reluflow.snapshots.network_snapshots): arrays in,
# figure out, every series tagged with a gid ("f-2", "neurons-2", ...).

_NEG, _POS = "firebrick", "darkviolet"


def plot_neurons_1d(
    x: np.ndarray,
    y: np.ndarray,
    t: np.ndarray,
    a: np.ndarray,
    W: np.ndarray,
    path: str | Path | None = None,
    *,
    time_label: str = "t",
    title: str | None = None,
) -> matplotlib.figure.Figure:
    """One-dimensional data with a bias: the learned function and the neurons over time.

    Neuron ``j`` computes ``a_j σ(w_j x + b_j)``: a kink at ``x = −b_j / w_j``,
    active to its right if ``w_j > 0`` and to its left otherwise. Top row, one
    panel per time: the data, the learned function ``f(x) = Σ_j a_j σ(w_j x + b_j)``
    and its kinks (ticks at the bottom, for neurons with ``|a_j| ‖(w_j, b_j)‖`` above
    1e-3 of the largest). Bottom row: each neuron as the point ``(−b_j / w_j, a_j)``
    (Boursier et al. 2022), ▲ for ``w_j > 0`` and ▼ for ``w_j < 0``, coloured by the
    sign of ``a_j``; points beyond the plotted range sit on its edge, hollow.

    Args:
        x, y: the inputs (n,) (without the bias feature) and labels.
        t: snapshot times (T,). a: output weights (T, m). W: ``(w_j, b_j)``, (T, m, 2).
        path: where to write the figure. time_label: the name of the time axis.

    Gids: ``data-{k}``, ``f-{k}``, ``kinks-{k}``, ``neurons-{k}`` for snapshot ``k``.
    """
    x, y, t = (np.asarray(v, dtype=float) for v in (x, y, t))
    a, W = np.asarray(a, dtype=float), np.asarray(W, dtype=float)
    T = len(t)
    span = max(float(x.max() - x.min()), 1.0)
    lo, hi = float(x.min()) - 0.5 * span, float(x.max()) + 0.5 * span
    grid = np.linspace(lo, hi, 400)
    fig, axes = plt.subplots(
        2, T, figsize=(2.1 * T + 0.6, 4.2), sharex=True, sharey="row", squeeze=False
    )
    a_max = max(float(np.abs(a).max()), 1e-300)
    for k in range(T):
        w, b, ak = W[k, :, 0], W[k, :, 1], a[k]
        f = np.maximum(np.outer(grid, w) + b, 0.0) @ ak
        ax0, ax1 = axes[0, k], axes[1, k]
        sc = ax0.scatter(x, y, color="tab:green", s=18, zorder=3)
        sc.set_gid(f"data-{k}")
        (ln,) = ax0.plot(grid, f, color="tab:blue", lw=1.4)
        ln.set_gid(f"f-{k}")
        size = np.abs(ak) * np.hypot(w, b)
        with np.errstate(divide="ignore", invalid="ignore"):
            kink = -b / w
        big = (size >= 1e-3 * max(size.max(), 1e-300)) & np.isfinite(kink)
        kk = kink[big & (kink > lo) & (kink < hi)]
        ln = ax0.vlines(kk, 0, 0.06, transform=ax0.get_xaxis_transform(), color="k", lw=0.8)
        ln.set_gid(f"kinks-{k}")
        ax0.set_title(f"{time_label} = {t[k]:.3g}", fontsize=8)
        pos = np.clip(np.nan_to_num(kink, nan=hi, posinf=hi, neginf=lo), lo, hi)
        inside = (pos > lo) & (pos < hi)
        colors = np.where(ak > 0, _POS, _NEG)
        for mk, sel in (("^", w > 0), ("v", w <= 0)):
            for filled in (True, False):
                s = sel & (inside == filled)
                if s.any():
                    pts = ax1.scatter(
                        pos[s],
                        ak[s],
                        marker=mk,
                        s=16,
                        c=list(colors[s]) if filled else "none",
                        edgecolors=list(colors[s]),
                        linewidths=0.7,
                    )
                    if filled and mk == "^":
                        pts.set_gid(f"neurons-{k}")
        ax1.axhline(0, color="0.6", lw=0.6, ls="--")
        ax1.set_ylim(-1.1 * a_max, 1.1 * a_max)
        ax1.set_xlabel("x  (kink −b_j / w_j)")
    axes[0, 0].set_ylabel("f(x)")
    axes[1, 0].set_ylabel("a_j")
    axes[0, 0].set_xlim(lo, hi)
    return _finish(fig, path, title)


def plot_directions(
    t: np.ndarray,
    a: np.ndarray,
    W: np.ndarray,
    path: str | Path | None = None,
    *,
    time_label: str = "t",
    title: str | None = None,
) -> matplotlib.figure.Figure:
    """First-layer directions over time, in polar coordinates on the top two principal axes.

    The principal axes are those of the final first layer (uncentred PCA: the
    top right singular vectors ``v_1, v_2`` of ``W(t_end)``, as in Boursier et
    al. 2022). Neuron ``j`` at time ``t`` is drawn at angle ``atan2(<w_j, v_2>,
    <w_j, v_1>)`` and radius ``‖(<w_j, v_1>, <w_j, v_2>)‖`` divided by the largest
    such radius at that time (the weights grow by many orders of magnitude; the
    largest radius is printed), coloured by the sign of ``a_j``. Early alignment
    shows as the neurons gathering on a few directions while still small.

    Args:
        t: snapshot times (T,). a: output weights (T, m). W: first layers (T, m, d).

    Gids: ``directions-{k}`` for snapshot ``k``.
    """
    t, a, W = (np.asarray(v, dtype=float) for v in (t, a, W))
    T = len(t)
    _, sv, vt = np.linalg.svd(W[-1], full_matrices=False)
    V2 = vt[:2] if vt.shape[0] >= 2 else np.vstack([vt, np.zeros_like(vt)])
    share = float((sv[:2] ** 2).sum() / max((sv**2).sum(), 1e-300))
    fig, axes = plt.subplots(
        1, T, figsize=(2.2 * T + 0.4, 2.8), subplot_kw={"projection": "polar"}, squeeze=False
    )
    for k in range(T):
        ax = axes[0, k]
        p = W[k] @ V2.T
        r = np.hypot(p[:, 0], p[:, 1])
        rmax = max(float(r.max()), 1e-300)
        sc = ax.scatter(
            np.arctan2(p[:, 1], p[:, 0]),
            r / rmax,
            c=list(np.where(a[k] > 0, _POS, _NEG)),
            marker="*",
            s=22,
        )
        sc.set_gid(f"directions-{k}")
        ax.set_rorigin(-0.05)
        ax.set_ylim(0, 1.05)
        ax.set_yticklabels([])
        ax.set_xticklabels([])
        ax.set_title(f"{time_label} = {t[k]:.3g}\nmax radius {rmax:.1e}", fontsize=7)
    fig.text(
        0.5,
        0.01,
        f"top-2 principal axes of the final W ({100 * share:.0f}% of its energy); "
        "purple: a_j > 0, red: a_j < 0",
        ha="center",
        fontsize=7,
    )
    return _finish(fig, path, title)


def plot_convergence_threshold(
    cells: pd.DataFrame,
    histories: Sequence[dict],
    orthogonal: pd.DataFrame | None = None,
    path: str | Path | None = None,
    *,
    labels: dict[str, str] | None = None,
    title: str | None = None,
) -> matplotlib.figure.Figure:
    """Convergence over ``n`` by several dynamics, their sharpness, and the orthogonal coverage.

    (a) fraction of draws converged against ``n`` for each ``d`` (colour) and dynamics
    (marker), Wilson 95% bars; (b) median ``lr · max sharpness / 2`` per ``(d, n)`` for
    each descent (1: the step at the stability bound); (c) ``lr · sharpness / 2`` along
    a few runs against the step; (d) when given, the share of well-initialised draws per
    width against the exact probability.

    Args:
        cells: ``d, n, run, runs, converged, fraction, lo, hi, edge_median``.
        histories: dicts with ``step``, ``sharpness``, ``lr``, ``n``, ``seed``.
        orthogonal: ``m, fraction, lo, hi, predicted_fraction`` per width.
        labels: display name of each ``run``.

    Gids: ``conv-{run}-d{d}``, ``edge-{run}-d{d}``, ``sharpness-{k}``, ``well-observed``,
    ``well-exact``.
    """
    labels = labels or {}
    npan = 4 if orthogonal is not None and len(orthogonal) else 3
    fig, axes = plt.subplots(1, npan, figsize=(3.0 * npan + 0.5, 3.1))
    markers = {"gd_step1": "o", "gd_small": "s", "flow": "D"}
    dims = sorted(cells["d"].unique())
    cmap = plt.get_cmap("viridis")
    for i, d in enumerate(dims):
        col = cmap(i / max(1, len(dims) - 1) * 0.85)
        for run, c in cells[cells["d"] == d].groupby("run"):
            c = c.sort_values("n")
            eb = axes[0].errorbar(
                c["n"], c["fraction"], yerr=[c["fraction"] - c["lo"], c["hi"] - c["fraction"]],
                marker=markers.get(run, "x"), ms=4, color=col, lw=0.9, capsize=1.5,
                mfc="none" if run != "gd_step1" else col,
                ls="-" if run == "gd_step1" else ("--" if run == "gd_small" else ":"),
                label=f"d = {d}, {labels.get(run, run)}",
            )
            eb.lines[0].set_gid(f"conv-{run}-d{d}")
            if run != "flow":
                (ln,) = axes[1].plot(c["n"], c["edge_median"], marker=markers.get(run, "x"),
                                     ms=4, color=col, lw=0.9, mfc="none" if run != "gd_step1" else col,
                                     ls="-" if run == "gd_step1" else "--")
                ln.set_gid(f"edge-{run}-d{d}")
    axes[0].set_xlabel("n")
    axes[0].set_ylabel("fraction converged")
    axes[0].set_ylim(-0.03, 1.03)
    axes[0].legend(frameon=False, fontsize=5.5, loc="best")
    axes[0].set_title("(a) convergence within their budget", fontsize=8)
    axes[1].axhline(1.0, color="k", lw=0.7, ls=":")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("n")
    axes[1].set_ylabel("median lr · max sharpness / 2")
    axes[1].set_title("(b) step against 2 / sharpness", fontsize=8)
    for k, h in enumerate(histories):
        steps = np.asarray(h["step"], float)
        (ln,) = axes[2].plot(steps + 1, np.asarray(h["sharpness"]) * h["lr"] / 2, marker=".",
                             lw=0.8, label=f"n = {h['n']}, seed {h['seed']}")
        ln.set_gid(f"sharpness-{k}")
    axes[2].axhline(1.0, color="k", lw=0.7, ls=":", label="2 / lr")
    axes[2].set_xscale("log")
    axes[2].set_xlabel("step + 1")
    axes[2].set_ylabel("lr · sharpness / 2")
    axes[2].set_title("(c) sharpness along step-1 runs", fontsize=8)
    axes[2].legend(frameon=False, fontsize=5.5)
    if npan == 4:
        o = orthogonal.sort_values("m")
        eb = axes[3].errorbar(o["m"], o["fraction"], yerr=[o["fraction"] - o["lo"], o["hi"] - o["fraction"]],
                              fmt="o", ms=4, color="C0", capsize=1.5, label="observed (Wilson 95%)")
        eb.lines[0].set_gid("well-observed")
        (ln,) = axes[3].plot(o["m"], o["predicted_fraction"], "x-", color="k", lw=0.9,
                             label="exact probability")
        ln.set_gid("well-exact")
        axes[3].set_xlabel("width m")
        axes[3].set_ylabel("share well initialised")
        axes[3].set_ylim(-0.03, 1.03)
        axes[3].set_title(f"(d) orthogonal data, n = {int(o['n'].iloc[0])}", fontsize=8)
        axes[3].legend(frameon=False, fontsize=6)
    return _finish(fig, path, title)


def plot_loss_curves(
    panels: Sequence[dict],
    path: str | Path | None = None,
    *,
    time_label: str = "t",
    title: str | None = None,
) -> matplotlib.figure.Figure:
    """Training loss against time for several dynamics on the same problem, one panel per problem.

    Args:
        panels: dicts with ``title`` and ``curves``, a list of dicts with ``label``,
            ``t``, ``loss`` and optionally ``step=True`` (a staircase, e.g. the
            limit's plateaus, drawn ``where="post"``) and ``events`` (times marked by ticks).
        time_label: the name of the time axis.

    Gids: ``loss-{p}-{k}`` (panel ``p``, curve ``k``).
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels) + 0.3, 2.9), squeeze=False)
    styles = ["-", "--", ":", "-."]
    for p, panel in enumerate(panels):
        ax = axes[0, p]
        # the floor of the log axis: a decade below the smallest positive loss of a dynamics
        # (a limit's final plateau is exactly 0 when it interpolates)
        pos = [np.asarray(c["loss"], float) for c in panel["curves"] if not c.get("step")]
        pos = np.concatenate([x[x > 0] for x in pos]) if pos else np.zeros(0)
        floor = float(pos.min()) / 10 if pos.size else 1e-12
        for k, c in enumerate(panel["curves"]):
            t, loss = np.asarray(c["t"], float), np.asarray(c["loss"], float)
            loss = np.maximum(loss, floor)
            if c.get("step"):
                (ln,) = ax.step(t, loss, where="post", color="k", lw=1.0, ls="--", label=c["label"])
            else:
                (ln,) = ax.plot(t, loss, lw=1.3, ls=styles[k % 4], color=f"C{k}", label=c["label"])
            ln.set_gid(f"loss-{p}-{k}")
            ev = np.asarray(c.get("events", []), float)
            if ev.size:
                ax.vlines(
                    ev, 0, 0.05, transform=ax.get_xaxis_transform(), color=ln.get_color(), lw=0.8
                )
        ax.set_yscale("log")
        ax.set_ylim(bottom=floor)
        ax.set_xlabel(time_label)
        ax.set_title(panel["title"], fontsize=8)
        ax.legend(frameon=False, fontsize=6)
    axes[0, 0].set_ylabel("training loss")
    return _finish(fig, path, title)

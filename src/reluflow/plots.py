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
    "plot_convergence",
    "plot_incremental",
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
    the jump process's staircase (THEORY.md §4: plateaus ``(1/2n) Σ_{i ∉ F} y_i²``)
    dashed. Below, one panel per λ: every ``|a_j(τ)|`` on a log scale, the flow's
    activation events (dotted, coloured as their neuron) and the limit's event
    times (dashed grey); on the right, the limit's final ``|a_j|`` as ticks.

    Args:
        flows: one dict per λ with ``scale``, ``tau``, ``loss``, ``a_abs`` (T, m),
            ``event_tau`` and ``event_neuron``.
        limit: dict with ``tau``, ``plateau_loss``, ``initial_loss``, ``a`` (m,)
            and ``event_neuron``.
        path: where to write the figure (``None``: do not write).
        title: figure title.

    Gids: ``flow-loss-{λ:g}``, ``flow-a-{λ:g}-{j}``, ``limit-staircase``,
    ``flow-event-{λ:g}-{j}``, ``limit-event-{k}``.
    """
    flows = sorted(flows, key=lambda f: -float(f["scale"]))
    k = len(flows)
    fig, axes = plt.subplots(
        k + 1,
        1,
        figsize=(6.4, 2.0 + 1.45 * k),
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
    ax0.legend(frameon=False, fontsize=7, ncol=2, loc="upper right")
    lim_a = np.abs(np.asarray(limit["a"], dtype=float))
    ncol = plt.get_cmap("tab20")
    for ax, f in zip(axes[1:], flows, strict=True):
        lam = float(f["scale"])
        a_abs = np.asarray(f["a_abs"], dtype=float)
        for j in range(a_abs.shape[1]):
            (ln,) = ax.plot(f["tau"], a_abs[:, j], color=ncol(j % 20), lw=0.8)
            ln.set_gid(f"flow-a-{lam:g}-{j}")
        for tj, nj in zip(f["event_tau"], f["event_neuron"], strict=True):
            vl = ax.axvline(float(tj), color=ncol(int(nj) % 20), lw=0.7, ls=":")
            vl.set_gid(f"flow-event-{lam:g}-{int(nj)}")
        for q, tq in enumerate(lim_tau):
            vl = ax.axvline(float(tq), color="0.55", lw=0.6, ls="--")
            vl.set_gid(f"limit-event-{q}")
        for j in np.flatnonzero(lim_a > 0):
            ax.plot([tau_end], [lim_a[j]], marker="<", ms=4, color=ncol(int(j) % 20), clip_on=False)
        ax.set_yscale("log")
        ax.set_ylim(max(lam * 1e-2, 1e-300), max(2.0, float(lim_a.max(initial=1.0)) * 2))
        ax.set_ylabel("|a_j|")
        ax.text(0.01, 0.92, _lam_label(lam), transform=ax.transAxes, fontsize=7, va="top")
    axes[-1].set_xlabel("τ = t / log(1/λ)")
    axes[-1].set_xlim(0, tau_end)
    return _finish(fig, path, title)


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

    (a) P against ``m`` for each ``n``: Monte Carlo of the limit (points with
    confidence intervals), the exact curve (THEORY.md §5, lines) and the flow at
    small λ (open squares). (b) The Monte Carlo P over the ``(log₂ n, m)`` grid
    with the measured 50% widths and the fitted boundary ``m = c log₂ n``.
    (c) The same curves against ``m / log₂ n``: they collapse.

    Args:
        mc: limit Monte Carlo, one row per ``(n, m)``: ``n, m, trials, p, lo, hi``.
        exact: exact curve, rows ``n, m, p`` (every integer ``m`` of the range).
        boundary: rows ``n, m50_mc, m50_exact`` (50% widths).
        fit: ``c`` and ``c_se`` (slope of ``m50`` against ``log₂ n``), ``c_exact``.
        flow: the flow's Monte Carlo, same columns as ``mc`` (optional).
        path: where to write the figure. title: figure title.

    Gids: ``limit-mc-n{n}``, ``exact-n{n}``, ``flow-mc-n{n}``, ``boundary-fit``,
    ``m50-mc``, ``collapse-mc-n{n}``, ``collapse-exact-n{n}``.
    """
    fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(13.0, 3.9))
    ns = sorted(int(v) for v in mc["n"].unique())
    cmap = plt.get_cmap("plasma")

    def colour(n: int) -> tuple:
        return cmap(0.85 * ns.index(n) / max(1, len(ns) - 1))

    for n in ns:
        c = colour(n)
        d = mc[mc["n"] == n].sort_values("m")
        yerr = np.vstack([d["p"] - d["lo"], d["hi"] - d["p"]])
        eb = ax0.errorbar(
            d["m"],
            d["p"],
            yerr=yerr,
            fmt="o",
            ms=3,
            color=c,
            lw=0.8,
            capsize=1.5,
            label=f"n = 2^{int(round(np.log2(n)))}" if n & (n - 1) == 0 else f"n = {n}",
        )
        eb.lines[0].set_gid(f"limit-mc-n{n}")
        e = exact[exact["n"] == n].sort_values("m")
        (ln,) = ax0.plot(e["m"], e["p"], color=c, lw=1.0)
        ln.set_gid(f"exact-n{n}")
        x = d["m"] / np.log2(n)
        eb = ax2.errorbar(x, d["p"], yerr=yerr, fmt="o", ms=3, color=c, lw=0.8, capsize=1.5)
        eb.lines[0].set_gid(f"collapse-mc-n{n}")
        (ln,) = ax2.plot(e["m"] / np.log2(n), e["p"], color=c, lw=0.9)
        ln.set_gid(f"collapse-exact-n{n}")
        if flow is not None and len(flow):
            fd = flow[flow["n"] == n].sort_values("m")
            if len(fd):
                fyerr = np.vstack([fd["p"] - fd["lo"], fd["hi"] - fd["p"]])
                eb = ax0.errorbar(
                    fd["m"],
                    fd["p"],
                    yerr=fyerr,
                    fmt="s",
                    ms=5,
                    mfc="none",
                    color=c,
                    lw=0.6,
                    capsize=1.5,
                )
                eb.lines[0].set_gid(f"flow-mc-n{n}")
    ax0.set_xlabel("width m")
    ax0.set_ylabel("P(interpolation)")
    ax0.set_title("(a) limit MC (●, Wilson 95%), exact (—), flow (□)", fontsize=8)
    ax0.legend(frameon=False, fontsize=6.5, ncol=2, loc="lower right")
    # (b) the MC probability on the (log2 n, m) grid, one square per cell
    log2n = np.log2(np.array(ns, dtype=float))
    sc = ax1.scatter(
        np.log2(mc["n"].astype(float)),
        mc["m"],
        c=mc["p"],
        cmap="viridis",
        vmin=0,
        vmax=1,
        marker="s",
        s=60 if len(mc) < 150 else 22,
        edgecolors="none",
    )
    sc.set_gid("limit-mc-grid")
    fig.colorbar(sc, ax=ax1, label="P (limit MC)", fraction=0.05)
    dx = 0.5
    b = boundary.sort_values("n")
    (ln,) = ax1.plot(
        np.log2(b["n"]), b["m50_mc"], "o", mfc="w", ms=4, mec="k", ls="none", label="50% (MC)"
    )
    ln.set_gid("m50-mc")
    xs = np.linspace(log2n[0] - dx, log2n[-1] + dx, 50)
    (ln,) = ax1.plot(
        xs,
        fit["c"] * xs + fit.get("b", 0.0),
        color="C3",
        lw=1.2,
        ls="--",
        label=f"m = {fit['c']:.2f}({fit['c_se']:.2f}) log₂ n"
        + (f" {fit['b']:+.2f}" if fit.get("b") else ""),
    )
    ln.set_gid("boundary-fit")
    ax1.set_xlabel(_LOG2)
    ax1.set_ylabel("width m")
    ax1.set_title("(b) P over (n, m); boundary m ≈ c log₂ n", fontsize=8)
    if "m50_exact" in b:
        (ln,) = ax1.plot(
            np.log2(b["n"]), b["m50_exact"], "x", color="k", ms=4, ls="none", label="50% (exact)"
        )
        ln.set_gid("m50-exact")
    ax1.legend(frameon=True, fontsize=6.5, loc="upper left")
    ax2.set_xlabel("m / log₂ n")
    ax2.set_ylabel("P(interpolation)")
    ax2.set_title("(c) collapse under m → m / log₂ n", fontsize=8)
    return _finish(fig, path, title)


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
    with standard errors, the minimal interpolating norm (THEORY.md §5, ×), and
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

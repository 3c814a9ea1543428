"""Figures a paper could print (matplotlib, PDF and PNG).

Every function takes results, draws on a new figure, writes it to ``path``
(the suffix picks the format; ``.pdf`` and ``.png`` both work) when one is
given, and returns the :class:`matplotlib.figure.Figure` so that callers and
tests can read back the plotted data.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .limit import LimitResult  # noqa: E402
from .trajectory import Trajectory  # noqa: E402

__all__ = ["limit_staircase", "plot_convergence", "plot_trajectory", "save_figure"]

plt.rcParams.update(
    {
        "figure.dpi": 110,
        "savefig.dpi": 200,
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)


def save_figure(fig: matplotlib.figure.Figure, path: str | Path | None) -> None:
    """Write ``fig`` to ``path`` (format from the suffix); also a ``.png`` beside a ``.pdf``."""
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
    x = traj.tau if traj.scale < 1 else traj.t
    ax0.plot(x, traj.loss, color="C0", lw=1.4, label=f"{traj.dynamics}, λ = {traj.scale:.0e}")
    if limit is not None:
        st, sl = limit_staircase(limit, tau_end=float(x[-1]))
        ax0.step(st, sl, where="post", color="k", ls="--", lw=1.0, label="λ → 0 limit")
    ax0.set_ylabel("training loss")
    ax0.set_yscale("symlog", linthresh=max(1e-4, float(traj.loss.min()) or 1e-4))
    ax0.legend(frameon=False, loc="upper right")
    ax1.plot(x, traj.a_abs, lw=0.9)
    ax1.set_yscale("log")
    ax1.set_ylabel("|a_j|")
    ax1.set_xlabel("τ = t / log(1/λ)" if traj.scale < 1 else "t")
    ev = activation_events(traj)
    for tau_j in ev["tau"] if traj.scale < 1 else ev["t"]:
        for ax in (ax0, ax1):
            ax.axvline(tau_j, color="0.7", lw=0.6, ls=":")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
    return fig


def plot_convergence(
    trajs: Sequence[Trajectory],
    limit: LimitResult,
    path: str | Path | None = None,
    *,
    title: str | None = None,
) -> matplotlib.figure.Figure:
    """Loss staircases of the flow at several λ converging onto the limit's (dashed)."""
    fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(6.0, 5.5), sharex=True)
    tau_end = max(float(tr.tau[-1]) for tr in trajs)
    cmap = plt.get_cmap("viridis")
    for k, tr in enumerate(trajs):
        c = cmap(k / max(1, len(trajs) - 1) * 0.85)
        ax0.plot(tr.tau, tr.loss, color=c, lw=1.2, label=f"λ = {tr.scale:.0e}")
        ax1.plot(
            tr.tau, np.log(np.maximum(tr.a_abs, 1e-300)) / np.log(1 / tr.scale), color=c, lw=0.6
        )
    st, sl = limit_staircase(limit, tau_end=tau_end)
    ax0.step(st, sl, where="post", color="k", ls="--", lw=1.2, label="λ → 0 limit")
    for tau_k in limit.tau:
        ax1.axvline(tau_k, color="k", ls="--", lw=0.5)
    ax0.set_ylabel("training loss")
    ax0.legend(frameon=False, fontsize=8)
    ax1.set_ylabel("p_j = log|a_j| / log(1/λ)")
    ax1.set_xlabel("τ = t / log(1/λ)")
    ax1.set_ylim(-1.3, 0.5)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
    return fig

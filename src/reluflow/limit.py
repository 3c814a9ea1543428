"""The λ → 0 limit of gradient flow on orthogonal data: a saddle-to-saddle jump process.

docs/limit.md. With ``S_j = {i : s_j y_i > 0 and u_ji(0) > 0}``, ``F`` the samples
fitted so far and ``p_j = log|a_j| / log(1/λ)`` (starting at −1), each neuron
grows at the top eigenvalue of its linearisation,

    γ_j(τ) = (1/n) sqrt( Σ_{i ∈ S_j \\ F} y_i² ‖x_i‖² ),        dp_j/dτ = γ_j,

and when ``p_j`` reaches 0 it fits ``A_j = S_j \\ F`` exactly and for good:

    a_j⁴ = Σ_{i ∈ A_j} y_i² / ‖x_i‖²,      u_ji = y_i / a_j  (i ∈ A_j),      ‖w_j‖ = |a_j|.

Between events the loss sits on the plateau ``(1/2n) Σ_{i ∉ F} y_i²``. The process
needs only the *signs* of the initialisation, so from a seed it draws the sign
bits of ``u(0)`` (:func:`reluflow._rng.sign_bits`), never the ``m x n`` Gaussians:
that is what makes ``n = 10⁷`` cheap. Each event updates the other neurons'
remaining weight with the columns of the samples just fitted, so the total
work is ``O(m n)``.

Ties (neurons reaching ``p = 0`` together, common with ±1 labels and unit
norms) are not resolved by index order: a tied group whose sample sets overlap
is resolved by the gradient flow of the group alone, started on each neuron's
leading growth direction with the O(1) amplitude ``C_j`` it has on the current
plateau (``log|a_j(t)| = log(1/λ) p_j(τ) + log C_j``): its own initialisation
gives it (:func:`_alignment_amplitude`), and every earlier event at which its
rate changed multiplies it by the exact transition factor, obtained by
integrating the neuron's linear dynamics through the activating group's own
flow (:func:`_group_flow`; docs/finite-scale.md). Ties are therefore exact.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy.integrate import solve_ivp

from . import _memory, _rng
from . import _validate as V
from ._provenance import provenance as _provenance
from .data import ArrayData, Dataset, OrthogonalData
from .errors import InputError, NotOrthogonalError
from .network import INITS, Network, init_network
from .theory import _norm_ratio
from .theory import min_norm_sq as _min_norm_sq

__all__ = ["LimitResult", "Tie", "jump_process"]

ORTHOGONALITY_TOL = 1e-10
TIE_RTOL = 1e-9
# The group flow of a tie starts at ε times the O(1) amplitudes: near the origin the
# flow's nonlinearity is cubic, so starting at ε instead of 0+ shifts the result by
# O(ε²) = 1e-12 relative, while the escape (log(1/ε)/γ) stays short.
_TIE_EPS = 1e-6
_TIE_RTOL_ODE = 1e-10
_TIE_RESIDUAL_TOL = 1e-10
# Below this fraction of |y_i| a tied neuron's contribution to sample i counts as
# dead (a coordinate driven to 0 by the other neurons of the group).
_DEAD_FRACTION = 1e-9
# Neurons whose initial Gaussians are drawn at once when exact amplitudes are needed.
_AMPLITUDE_CHUNK = 16


@dataclass(frozen=True, eq=False)
class Tie:
    """Neurons that reach ``p = 0`` at the same τ (within ``tie_rtol``), and how they were resolved.

    Attributes:
        event: index of the event in :class:`LimitResult`. tau: its time.
        neurons: the tied neurons, increasing. spread: ``(max τ_j − min τ_j) / τ``
            of their computed activation times (0 for an exact tie).
        samples: ``|∪_j S_j \\ F|``, the samples the group fits.
        shared: samples in two or more of the ``S_j \\ F`` (0: the tie is
            harmless, each neuron fits its own samples).
        amplitudes: relative O(1) amplitudes the group flow started from, exact
            through every earlier event (max 1 within each overlapping component;
            NaN where not needed).
        a: the final output weights of the tied neurons.
        fitted: for each tied neuron, how many samples it ends up active on.
        residual: largest ``|r_i| / |y_i|`` the group flow reached before the
            final exact rescaling (NaN where no flow was needed).
    """

    event: int
    tau: float
    neurons: tuple[int, ...]
    spread: float
    samples: int
    shared: int
    amplitudes: np.ndarray
    a: np.ndarray
    fitted: np.ndarray
    residual: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "tau": self.tau,
            "neurons": list(self.neurons),
            "spread": self.spread,
            "samples": self.samples,
            "shared": self.shared,
            "amplitudes": self.amplitudes.tolist(),
            "a": self.a.tolist(),
            "fitted": self.fitted.tolist(),
            "residual": self.residual,
        }


@dataclass(frozen=True, eq=False)
class LimitResult:
    """The jump process: its events, ties and the limit network.

    Per-event arrays have one entry per event (``k`` events, increasing τ):

    Attributes:
        tau: event times ``τ`` (k,).
        event_neurons: the neuron(s) activating at each event (one tuple per event;
            more than one for a tie).
        event_fitted: number of samples newly fitted at each event (k,).
        plateau_loss: the loss after each event, ``(1/2n) Σ_{i ∉ F} y_i²`` (k,).
        rates: every neuron's rate ``γ_j`` after each event (k, m); 0 for
            activated neurons and for neurons with nothing left to fit.
        competitor_gap: at each event, ``−p_j(τ)`` of the nearest competitor: the
            not-yet-active neuron closest to ``p = 0`` among those that lose
            samples to the event (``inf`` if none). A flow at scale λ follows the
            limit through the event only once ``competitor_gap · log(1/λ) ≫ 1``
            (docs/finite-scale.md). competitor: that neuron, or −1 (k,).
        rivals: every (event, competitor) pair, (R, 4): event index, neuron,
            its gap ``−p_j(τ)`` and ``Σ y_i²/‖x_i‖²`` over the samples it lost.
        initial_rates: ``γ_j(0)`` (m,). initial_loss: ``(1/2n) Σ y_i²``.
        signs: output signs ``s_j`` (m,).
        fitted_at: for each sample, the event that fitted it, or −1 (n,).
        fitted_by: for each sample, the neuron that fits it (the largest
            contribution for a sample shared within a tie), −1 if unfitted, −2 if
            fitted by a tie left unresolved (n,).
        a: final output weights (m,): 0 for neurons that never activated.
        interpolates: every sample with ``y_i ≠ 0`` was fitted.
        norm_sq: ``‖θ‖²`` of the limit network: ``2 Σ_j sqrt(Σ_{A_j} y²/‖x‖²)``
            over the neurons that activated alone, plus ``Σ a² + ‖w‖²`` of each
            tied group as its flow resolved it. NaN when ties were left unresolved.
        min_norm_sq: the minimal interpolating norm (docs/limit.md) of the data.
        ratio: ``norm_sq / min_norm_sq`` for an interpolating network (>= 1);
            NaN otherwise, with the reason in :attr:`ratio_note`.
        ties: every tie, in event order.
        tie_rtol: relative tolerance on τ below which activations count as tied.
        ties_resolved: whether overlapping ties were resolved by their group flow.
        wall_s: wall time of the computation, initialisation included.
        provenance: version, seed, sizes, dataset description, tolerances.
    """

    tau: np.ndarray
    event_neurons: tuple[tuple[int, ...], ...]
    event_fitted: np.ndarray
    plateau_loss: np.ndarray
    rates: np.ndarray
    competitor_gap: np.ndarray
    competitor: np.ndarray
    rivals: np.ndarray
    initial_rates: np.ndarray
    initial_loss: float
    signs: np.ndarray
    fitted_at: np.ndarray
    fitted_by: np.ndarray
    a: np.ndarray
    interpolates: bool
    norm_sq: float
    min_norm_sq: float
    ratio: float
    ties: tuple[Tie, ...]
    tie_rtol: float
    ties_resolved: bool
    wall_s: float
    provenance: dict[str, Any]
    _y: np.ndarray = field(repr=False)
    _x_sq: np.ndarray = field(repr=False)
    # u of the tied neurons on their group's samples: (rows, cols, values).
    _tie_u: tuple[np.ndarray, np.ndarray, np.ndarray] = field(repr=False)

    @property
    def ratio_note(self) -> str:
        """Why :attr:`ratio` is NaN (e.g. "does not interpolate ..."), or "" when it is defined."""
        return _norm_ratio(self.norm_sq, self.min_norm_sq, self.interpolates)[1]

    @property
    def m(self) -> int:
        return int(self.signs.shape[0])

    @property
    def n(self) -> int:
        return int(self.fitted_at.shape[0])

    @property
    def n_events(self) -> int:
        return int(self.tau.shape[0])

    @property
    def n_ties(self) -> int:
        """Number of tied events (every tie, overlapping or not)."""
        return len(self.ties)

    @property
    def activated(self) -> np.ndarray:
        """Boolean (m,): neurons that left their saddle."""
        out = np.zeros(self.m, dtype=bool)
        for group in self.event_neurons:
            out[list(group)] = True
        return out

    @property
    def final_loss(self) -> float:
        return float(self.plateau_loss[-1]) if self.n_events else self.initial_loss

    def samples_of(self, event: int) -> np.ndarray:
        """Indices of the samples fitted at ``event``."""
        return np.flatnonzero(self.fitted_at == event)

    @cached_property
    def network(self) -> Network:
        """The limit network (``scale = 0``): ``a`` and ``u`` as above, ``w^⊥ = 0``.

        Built on first use: ``u`` is a dense (m, n) float64 array.
        """
        if not self.ties_resolved and any(t.shared for t in self.ties):
            raise InputError(
                "the limit network is undefined: overlapping ties were not "
                "resolved (jump_process(..., resolve_ties=False))"
            )
        u = np.zeros((self.m, self.n))
        idx = np.flatnonzero(self.fitted_by >= 0)
        j = self.fitted_by[idx]
        u[j, idx] = self._y[idx] / self.a[j]
        rows, cols, vals = self._tie_u
        if cols.size:
            u[:, cols] = 0.0  # a tied group's samples take exactly the group's values
            u[rows, cols] = vals
        return Network(
            a=self.a.copy(),
            u=u,
            w_perp_sq=np.zeros(self.m),
            scale=0.0,
            init="limit",
            seed=self.provenance["config"].get("seed"),
        )

    def events(self, rates: bool = False) -> list[dict[str, Any]]:
        """The event table as a list of dicts (``rates``: include every neuron's rate)."""
        tie_events = {t.event for t in self.ties}
        out = []
        for k in range(self.n_events):
            row = {
                "event": k,
                "tau": float(self.tau[k]),
                "neurons": list(self.event_neurons[k]),
                "fitted": int(self.event_fitted[k]),
                "loss": float(self.plateau_loss[k]),
                "tie": k in tie_events,
            }
            if rates:
                row["rates"] = self.rates[k].tolist()
            out.append(row)
        return out

    def events_frame(self, rates: bool = False) -> pd.DataFrame:
        """The event table as a DataFrame: one row per event.

        Columns: ``event, tau, neuron`` (the first neuron), ``neurons`` (tuple),
        ``fitted`` (samples newly fitted), ``loss`` (plateau after it), ``tie``,
        ``gap`` and ``competitor`` (see :attr:`competitor_gap`), and with ``rates``
        one column ``rate_j`` per neuron.
        """
        tie_events = {t.event for t in self.ties}
        df = pd.DataFrame(
            {
                "event": np.arange(self.n_events),
                "tau": self.tau,
                "neuron": [g[0] for g in self.event_neurons],
                "neurons": list(self.event_neurons),
                "fitted": self.event_fitted,
                "loss": self.plateau_loss,
                "tie": [k in tie_events for k in range(self.n_events)],
                "gap": self.competitor_gap,
                "competitor": self.competitor,
            }
        )
        if rates:
            df = pd.concat(
                [df, pd.DataFrame(self.rates, columns=[f"rate_{j}" for j in range(self.m)])], axis=1
            )
        return df

    def ties_frame(self) -> pd.DataFrame:
        """Every tie as a DataFrame row (see :class:`Tie`)."""
        return pd.DataFrame(
            [t.as_dict() for t in self.ties],
            columns=[
                "event",
                "tau",
                "neurons",
                "spread",
                "samples",
                "shared",
                "amplitudes",
                "a",
                "fitted",
                "residual",
            ],
        )

    def summary(self) -> dict[str, Any]:
        """Scalar results, JSON-able."""
        return {
            "n": self.n,
            "m": self.m,
            "events": self.n_events,
            "ties": self.n_ties,
            "interpolates": self.interpolates,
            "final_loss": self.final_loss,
            "norm_sq": self.norm_sq,
            "min_norm_sq": self.min_norm_sq,
            "ratio": self.ratio,
            "ratio_note": self.ratio_note,
            "wall_s": self.wall_s,
        }


# --------------------------------------------------------------------------- inputs


def _check_data(data: Any) -> None:
    if not isinstance(data, Dataset):
        raise InputError(
            f"data must be a reluflow dataset (orthogonal_data, array_data, ...), "
            f"got {type(data).__name__}"
        )
    if isinstance(data, ArrayData) and data.coherence > ORTHOGONALITY_TOL:
        raise NotOrthogonalError(data.coherence, ORTHOGONALITY_TOL, what="the jump process")


def _seed_initial_rows(
    data: OrthogonalData,
    m: int,
    seed: int,
    init: str,
    rows: np.ndarray,
    bits: np.ndarray,
    signs: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``rows`` of ``init_network(data, m, 1.0, seed=seed, init=init)``: ``(a0, u0)``.

    Draws the magnitude stream only up to the last row needed (a Generator fills
    an array sequentially, so row ``j`` of the (m, n) draw is the ``j``-th block
    of ``n`` draws), and never holds more than one row of other neurons.
    """
    n, d = data.n, data.d
    want = {int(j): k for k, j in enumerate(rows)}
    gen = _rng.stream(seed, _rng.INIT_MAGNITUDES)
    u0 = np.empty((len(rows), n))
    for j in range(max(want) + 1):
        g = gen.standard_normal(n)
        if j in want:
            mags = np.abs(g)
            u0[want[j]] = np.where(bits[j], mags, -mags) / np.sqrt(d) * data.norms
    if init == "balanced":
        chi2 = (
            _rng.stream(seed, _rng.INIT_PERP_NORM).chisquare(d - n, size=m)
            if d > n
            else np.zeros(m)
        )
        w_perp_sq = chi2 / d
        a0 = signs[rows] * np.sqrt(w_perp_sq[rows] + (u0**2 / data.norms**2).sum(axis=-1))
    else:
        a0 = signs[rows] * np.abs(_rng.stream(seed, _rng.INIT_A_MAGNITUDE).standard_normal(m))[rows]
    return a0, u0


# --------------------------------------------------------------------------- tie resolution


def _alignment_amplitude(a0: float, u0: np.ndarray, y: np.ndarray, x_sq: np.ndarray) -> float:
    """O(1) amplitude ``c = lim_t e^{−γ t} a(t)`` of one small neuron's linear growth phase.

    While every neuron is λ-small the residual is ``r = −y`` and a neuron evolves alone:

        da/dt = (1/n) Σ_i y_i u_i 1[u_i > 0],       du_i/dt = (1/n) a y_i ‖x_i‖² 1[u_i > 0].

    Coordinates with ``u_i(0) ≤ 0`` never move; those with ``s y_i < 0`` are
    driven to 0 and die. With ``B(t) = ∫_0^t a``, ``u_i(t) = u_i(0) + y_i ‖x_i‖² B / n``
    is affine in ``B``, so the wrong-sign coordinates die in the order of the
    level ``B`` at which they vanish, whatever the rates in between. Between two
    deaths the active set is fixed, ``a'' = γ_A² a`` and, in the phase plane,

        a² = a_k² + γ_A² (B² − B_k²) + 2 C_A (B − B_k),    C_A = (1/n) Σ_A y_i u_i(0),

    while ``Z = γ_A a + a'`` grows like ``e^{γ_A t}``, which gives each segment's
    duration as ``log(Z_end / Z_start) / γ_A``. After the last death the neuron
    grows on ``S``: ``a(t) = c e^{γ t} + β e^{−γ t}`` with ``c = Z e^{−γ t} / (2γ)``.
    The whole computation is a few cumulative sums, exact up to rounding.

    Args:
        a0: initial output weight (its sign is the neuron's sign).
        u0: initial reduced coordinates (n,). y: labels. x_sq: ``‖x_i‖²``.

    Returns:
        ``c``, with the sign of ``a0`` (homogeneous of degree 1 in ``(a0, u0)``);
        0 if the neuron has nothing to grow on.
    """
    n = y.shape[0]
    s = 1.0 if a0 > 0 else -1.0
    yt = s * y
    live = (u0 > 0) & (yt != 0)
    pos = live & (yt > 0)
    neg = live & (yt < 0)
    g2_final = float((yt[pos] ** 2 * x_sq[pos]).sum()) / n**2
    if g2_final == 0.0 or a0 == 0.0:
        return 0.0
    gamma = math.sqrt(g2_final)
    c_final = float((yt[pos] * u0[pos]).sum()) / n
    level = u0[neg] * n / (-yt[neg] * x_sq[neg])  # B at which each wrong-sign coordinate dies
    order = np.argsort(level, kind="stable")
    levels = np.concatenate([[0.0], level[order]])
    d_g2 = (yt[neg] ** 2 * x_sq[neg])[order] / n**2
    d_c = (yt[neg] * u0[neg])[order] / n
    # Segment k runs from levels[k] to levels[k+1] with every coordinate dying
    # at or after levels[k+1] still alive (suffix sums, no cancellation).
    g2_seg = g2_final + np.cumsum(d_g2[::-1])[::-1]
    c_seg = c_final + np.cumsum(d_c[::-1])[::-1]
    lo, hi = levels[:-1], levels[1:]
    a_sq = a0**2 + np.concatenate(
        [[0.0], np.cumsum(g2_seg * (hi - lo) * (hi + lo) + 2.0 * c_seg * (hi - lo))]
    )
    if (a_sq[1:] <= 0.0).any():
        # a reaches 0 before the last wrong-sign coordinate dies: the neuron flips
        # its output sign (possible with init='independent'); §4 assumes it does not.
        warnings.warn(
            "a neuron's output weight changes sign during the initial alignment "
            "phase; the jump process (docs/limit.md) keeps its initial sign, and its "
            "tie amplitude is only indicative",
            RuntimeWarning,
            stacklevel=3,
        )
        a_sq = np.maximum(a_sq, np.finfo(float).tiny)
    a = np.sqrt(a_sq)
    t_end = 0.0
    if order.size:
        g_seg = np.sqrt(g2_seg)
        z_start = g_seg * a[:-1] + g2_seg * lo + c_seg
        z_end = g_seg * a[1:] + g2_seg * hi + c_seg
        t_end = float((np.log(np.abs(z_end / z_start)) / g_seg).sum())
    z = gamma * a[-1] + g2_final * levels[-1] + c_final
    return s * math.exp(math.log(z / (2.0 * gamma)) - gamma * t_end)


@dataclass(frozen=True)
class _Small:
    """A λ-small neuron whose remaining sample set meets an activating group's samples.

    ``sign``: its output sign; ``gam_pre``/``gam_post``: its rate before/after the
    group's samples are fitted; ``mask``: (K,) which of the group's K samples are in
    its remaining set ``S_j \\ F``.
    """

    sign: float
    gam_pre: float
    gam_post: float
    mask: np.ndarray


def _group_flow(
    signs: np.ndarray,
    log_c: np.ndarray,
    gam: np.ndarray,
    member: np.ndarray,
    y: np.ndarray,
    x_sq: np.ndarray,
    n: int,
    small: tuple[_Small, ...] = (),
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, np.ndarray]:
    """Gradient flow of one activating group on its samples, and the small neurons through it.

    Time ``s`` is measured so that, before the group is visible, neuron ``k`` of the
    group is ``a_k(s) = s_k C_k e^{γ_k s}`` on its top growth direction
    ``(1, y_i ‖x_i‖²/(n γ_k))`` (``log_c`` holds ``log C_k``). The group starts at the
    ``s_0`` where its largest member has size ``ε`` and follows the exact orthogonal flow

        r_i = Σ_k a_k σ(u_ki) − y_i,  da_k/ds = −(1/n) Σ_i r_i σ(u_ki),
        du_ki/ds = −(1/n) a_k r_i ‖x_i‖² 1[u_ki > 0]

    until it fits its samples. Samples with the same membership pattern, label
    and norm start equal and stay equal, so they are merged (with a
    multiplicity): with ±1 labels and unit norms at most ``2^g − 1`` classes.

    Each small neuron ``j`` (``small``) is linear in the group's residual ``r(s)``:
    on its samples outside the group ``r = −y`` for good, which the single scalar
    ``P = (1/n) Σ_{rest} y_i u_ji`` summarises exactly,

        da/ds = P − (1/n) Σ_{i ∈ group} r_i(s) u_ji,   dP/ds = γ'² a,
        du_ji/ds = −(1/n) a r_i(s) ‖x_i‖²   (i in the group's samples),

    started on its growth direction for rate ``γ`` at amplitude ``e^{γ s}`` (a
    coordinate the group's residual drives to 0, where it overshoots, dies). Its
    size is carried as ``e^ℓ`` times a unit vector (so that a neuron whose rate
    falls a lot does not underflow). Once the group has fitted its samples the
    neuron grows at ``γ'``: ``a = c e^{γ' s} + β e^{−γ' s}`` with
    ``c = (γ' a + da/ds) e^{−γ' s} / (2γ')``, and the transition factor is
    ``T = c`` (the amplitude after, per unit amplitude before): exact, where the
    instantaneous-change approximation gives ``(1 + γ'/γ)/2``.

    Args:
        signs, log_c, gam: ``s_k``, ``log C_k`` and rates ``γ_k`` of the group (g,).
        member: (g, K) bool, ``member[k, i]``: sample ``i`` is in ``S_k \\ F``.
        y, x_sq: labels and squared norms of the K samples. n: dataset size.
        small: the small neurons to carry through the transition.

    Returns:
        ``(a, u, residual, s0, log_t)``: final ``a`` (g,), ``u`` (g, K) rescaled so that
        the group fits its samples exactly, the largest ``|r_i|/|y_i|`` the flow itself
        reached, the start ``s_0``, and ``log T_j`` per small neuron.
    """
    g, _ = member.shape
    keys = np.concatenate([member.T.astype(np.float64), y[:, None], x_sq[:, None]], axis=1)
    uniq, inverse, mult = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    mem_c = uniq[:, :g].T > 0.5
    y_c, xsq_c, mult_c = uniq[:, g], uniq[:, g + 1], mult.astype(np.float64)
    kc = y_c.shape[0]
    log_eps = math.log(_TIE_EPS)
    s0 = float(np.min((log_eps - log_c) / gam))
    a0 = signs * np.exp(log_c + gam * s0)  # the largest is exactly ε
    u0 = np.where(mem_c, a0[:, None] * (y_c * xsq_c)[None, :] / (n * gam[:, None]), 0.0)
    unit = float(max(gam.max(), max((sm.gam_pre for sm in small), default=0.0)))

    ns = len(small)
    ms = np.zeros((ns, kc))  # multiplicity of each class in each small neuron's set
    sgn_s = np.array([sm.sign for sm in small])
    gpre = np.array([sm.gam_pre for sm in small])
    gpost = np.array([sm.gam_post for sm in small])
    for k, sm in enumerate(small):
        ms[k] = np.bincount(inverse[sm.mask], minlength=kc)
    on = ms > 0
    # Initial direction (a, P, u_c) of each small neuron, and its log-norm at s0.
    v_a = sgn_s
    v_p = sgn_s * gpost**2 / np.where(gpre > 0, gpre, 1.0)
    v_u = np.where(on, sgn_s[:, None] * (y_c * xsq_c)[None, :] / (n * gpre[:, None]), 0.0)
    nv = np.sqrt(v_a**2 + v_p**2 + (v_u**2).sum(axis=1))
    ell0 = gpre * s0 + np.log(nv)
    n_grp = g + g * kc

    def field_(_t: float, z: np.ndarray) -> np.ndarray:
        a, u = z[:g], z[g:n_grp].reshape(g, kc)
        act = u > 0.0
        sig = np.where(act, u, 0.0)
        r = a @ sig - y_c
        da = -(sig @ (mult_c * r)) / n
        du = -(a[:, None] * (r * xsq_c)[None, :]) * act / n
        out = [da, du.ravel()]
        if ns:
            w = z[n_grp:].reshape(ns, 3 + kc)
            sa, sp, su = w[:, 0], w[:, 1], w[:, 3:]
            alive = on & (su > 0.0)  # a coordinate the group's residual drives to 0 dies
            dsa = sp - (np.where(alive, su, 0.0) * ms) @ r / n
            dsp = gpost**2 * sa
            dsu = -(sa[:, None] * (r * xsq_c)[None, :]) * alive / n
            q = (sa * dsa + sp * dsp + (su * dsu).sum(axis=1)) / (
                sa**2 + sp**2 + (su**2).sum(axis=1)
            )
            dw = np.concatenate(
                [
                    (dsa - q * sa)[:, None],
                    (dsp - q * sp)[:, None],
                    q[:, None],
                    dsu - q[:, None] * su,
                ],
                axis=1,
            )
            out.append(dw.ravel())
        return np.concatenate(out) / unit

    def rel_residual(z: np.ndarray) -> float:
        a, u = z[:g], z[g:n_grp].reshape(g, kc)
        return float(np.max(np.abs(a @ np.maximum(u, 0.0) - y_c) / np.abs(y_c)))

    def converged(_t: float, z: np.ndarray) -> float:
        return rel_residual(z) - _TIE_RESIDUAL_TOL

    converged.terminal = True  # type: ignore[attr-defined]
    converged.direction = -1  # type: ignore[attr-defined]
    parts = [a0, u0.ravel()]
    if ns:
        w0 = np.concatenate(
            [(v_a / nv)[:, None], (v_p / nv)[:, None], ell0[:, None], v_u / nv[:, None]], axis=1
        )
        parts.append(w0.ravel())
    z = np.concatenate(parts)
    # Tolerances: the group's coordinates and the small neurons' unit vectors are O(ε..1)
    # relative quantities; ℓ is absolute (an error δℓ is a relative error δℓ in T).
    t0, span = 0.0, 4.0 * math.log(1.0 / _TIE_EPS)
    for _ in range(8):
        sol = solve_ivp(
            field_,
            (t0, t0 + span),
            z,
            method="DOP853",
            rtol=_TIE_RTOL_ODE,
            atol=1e-300 if not ns else np.concatenate(
                [np.full(n_grp, 1e-300), np.full(ns * (3 + kc), _TIE_RTOL_ODE * 1e-3)]
            ),
            events=converged,
        )
        z, t0 = sol.y[:, -1], sol.t[-1]
        if sol.status == 1 or rel_residual(z) <= _TIE_RESIDUAL_TOL:
            break
        span *= 2.0
    residual = rel_residual(z)
    if residual > 1e-6:
        warnings.warn(
            f"the gradient flow of an activating group did not converge (relative residual "
            f"{residual:.2e}); its resolution is approximate",
            RuntimeWarning,
            stacklevel=3,
        )
    a, u = z[:g].copy(), np.maximum(z[g:n_grp].reshape(g, kc), 0.0)
    log_t = np.zeros(ns)
    if ns:
        w = z[n_grp:].reshape(ns, 3 + kc)
        sa, sp, ell, su = w[:, 0], w[:, 1], w[:, 2], w[:, 3:]
        r = a @ u - y_c
        zz = sgn_s * (gpost * sa + sp - (np.maximum(su, 0.0) * ms) @ r / n)
        s_end = s0 + t0 / unit
        log_t = ell + np.log(zz) - np.log(2.0 * gpost) - gpost * s_end
    share = a[:, None] * u / y_c[None, :]  # fraction of y_c each neuron provides
    u[share < _DEAD_FRACTION] = 0.0  # coordinates driven to 0 by the rest of the group
    fit = a @ u
    scale = np.divide(y_c, fit, out=np.zeros_like(fit), where=fit != 0.0)
    u *= scale[None, :]  # the flow's fit, made exact (a change of order `residual`)
    return a, u[:, inverse], residual, s0, log_t


# --------------------------------------------------------------------------- the process


def _cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def jump_process(
    data: Dataset,
    m: int | None = None,
    *,
    seed: int = 0,
    net: Network | None = None,
    init: str = "balanced",
    tie_rtol: float = TIE_RTOL,
    resolve_ties: bool = True,
) -> LimitResult:
    """Run the λ → 0 saddle-to-saddle jump process (docs/limit.md) on orthogonal data.

    The initial signs are either drawn from ``seed``, exactly those of
    ``init_network(data, m, scale, seed=seed, init=init)`` for any scale
    (``s = _rng.output_signs(seed, m)``, ``u_ji(0) > 0`` iff
    ``_rng.sign_bits(seed, m, n)[j, i]``; the Gaussians themselves are drawn
    only for tied neurons, to get their amplitudes), or read from a given
    network ``net`` (``s = sign(net.a)``, ``u_ji(0) > 0`` iff ``net.u > 0``),
    e.g. one from :func:`reluflow.network.load_init`.

    Events: the neuron whose log-scale ``p_j = −1 + ∫ γ_j dτ`` reaches 0 first
    activates and fits ``A_j = S_j \\ F``; ``F`` and every other neuron's rate
    are updated; the process ends when no neuron can grow. Neurons reaching
    0 within a relative ``tie_rtol`` of each other form a tie. Tied neurons with
    disjoint sample sets each fit their own samples; overlapping ones are
    resolved by the group's own gradient flow, each started on its top growth
    direction ``(a_j, u_j) ∝ s_j c_j (1, y ‖x‖²/(nγ_j))`` with amplitude

        c_j = lim_t e^{−γ_j t} a_j(t) / λ · Π T_j(event),

    the first factor from the neuron's own linear phase started at its actual
    ``(a_j(0), u_j(0))``, then, for every earlier event at which the neuron's rate
    changed ``γ → γ'``, the exact factor of that transition: the neuron's linear
    dynamics integrated through the activating group's flow, with the group's
    own amplitudes setting when the transition happens (:func:`_group_flow`). These
    are computed only when a tie needs them (one small ODE per earlier event).

    Args:
        data: orthogonal data (:class:`OrthogonalData`, or :class:`ArrayData`
            with coherence <= 1e-10; anything else raises
            :class:`~reluflow.errors.NotOrthogonalError`).
        m: width (with ``seed``); optional when ``net`` is given.
        seed: initialisation seed (ignored when ``net`` is given).
        net: an initial network on ``data`` whose signs (and, for ties, values) are used.
        init: ``"balanced"`` or ``"independent"``, as in :func:`init_network`:
            only the tie amplitudes depend on it.
        tie_rtol: relative tolerance on activation times for a tie.
        resolve_ties: if False, overlapping ties are recorded but not resolved
            (the events, plateaus and ``interpolates`` do not depend on the
            resolution; ``norm_sq`` is then NaN and ``network`` unavailable).

    Returns:
        A :class:`LimitResult`.
    """
    t_start = time.perf_counter()
    _check_data(data)
    init = V.choice("init", init, INITS)
    tie_rtol = V.tolerance("tie_rtol", tie_rtol)
    n = data.n
    y = np.asarray(data.y, dtype=np.float64)
    x_sq = np.asarray(data.sq_norms(), dtype=np.float64)

    if net is None and m is None:
        raise InputError("give the width m (with seed) or an initial network net")
    if net is None and isinstance(data, ArrayData):
        # Signs of u = W Xᵀ for explicit data come from the full Gaussian W.
        net = init_network(data, V.positive_int("m", m), 1.0, seed=V.seed("seed", seed), init=init)
        source = "seed"
    else:
        source = "net" if net is not None else "seed"
    if net is not None:
        if not isinstance(net, Network):
            raise InputError(f"net must be a reluflow Network, got {type(net).__name__}")
        if m is not None and V.positive_int("m", m) != net.m:
            raise InputError(f"m = {m} disagrees with the width of net ({net.m}); give one of them")
        if net.u.shape != (net.m, n):
            raise InputError(
                f"net.u must have shape (m, n) = ({net.m}, {n}) for this data, got {net.u.shape}"
            )
        m = net.m
        # the O(1) parts: their signs are those of a and u at any scale (docs/any-scale.md)
        lp = net.log_params
        signs = np.sign(np.asarray(lp.a_hat, dtype=np.float64))
        bits = np.asarray(lp.u_hat) > 0
        seed_used = net.seed
    else:
        m = V.positive_int("m", m)
        seed_used = V.seed("seed", seed)
        _memory.check_limit(n, m)
        signs = _rng.output_signs(seed_used, m)
        bits = _rng.sign_bits(seed_used, m, n)

    # Per-sample growth weight y_i² ‖x_i‖²; with ±1 labels and unit norms it is
    # the same for every labelled sample, and rates come from exact integer
    # counts, so identical histories give bit-identical times (exact ties).
    weight = y**2 * x_sq
    labelled = y != 0
    w_lab = weight[labelled]
    uniform = bool(w_lab.size == 0 or w_lab.min() == w_lab.max())
    w0 = float(w_lab[0]) if w_lab.size else 0.0
    # Each sample's share y_i² / ‖x_i‖² of the minimal norm (what a competitor loses);
    # constant for ±1 labels and unit norms, and then counted rather than summed.
    q_all = np.divide(y**2, x_sq, out=np.zeros_like(y), where=x_sq > 0)
    q_lab = q_all[labelled]
    q_uniform = bool(q_lab.size == 0 or q_lab.min() == q_lab.max())
    q0 = float(q_lab[0]) if q_lab.size else 0.0
    # Unfitted samples of each label sign: S_j \ F = bits[j] & avail[s_j].
    avail = {1.0: y > 0, -1.0: y < 0}

    count = np.zeros(m, dtype=np.int64)
    mass = np.zeros(m)
    for j in range(m):
        if signs[j] == 0:
            continue
        row = bits[j] & avail[signs[j]]
        count[j] = np.count_nonzero(row)
        if not uniform:
            mass[j] = weight[row].sum()
    if uniform:
        mass = count * w0

    def rates_now() -> np.ndarray:
        g = np.sqrt(np.maximum(mass, 0.0)) / n
        g[count == 0] = 0.0
        return g

    done = np.zeros(m, dtype=bool)
    p = np.full(m, -1.0)
    changed = np.zeros(m, dtype=bool)  # the neuron's rate changed at an earlier event
    fitted_at = np.full(n, -1, dtype=np.int32)
    fitted_by = np.full(n, -1, dtype=np.int32)
    a_final = np.zeros(m)
    y2_left = float((y**2).sum())
    initial_loss = y2_left / (2 * n)
    initial_rates = rates_now()

    ev_tau: list[float] = []
    ev_neurons: list[tuple[int, ...]] = []
    ev_fitted: list[int] = []
    ev_loss: list[float] = []
    ev_rates: list[np.ndarray] = []
    ev_gap: list[float] = []
    ev_rival: list[int] = []
    rival_rows: list[tuple[int, int, float, float]] = []
    lost_q: dict[int, float] = {}  # Σ y²/‖x‖² of the samples each competitor lost
    ties: list[Tie] = []
    tie_rows: list[np.ndarray] = []
    tie_cols: list[np.ndarray] = []
    tie_vals: list[np.ndarray] = []
    norm_sq = 0.0
    tau = 0.0
    amp0_cache: dict[int, float] = {}

    def amplitudes(rows: np.ndarray) -> np.ndarray:
        """``|c_j|`` of the linear phase for the given neurons (cached)."""
        need = np.array([j for j in rows if int(j) not in amp0_cache], dtype=np.int64)
        if need.size:
            scale = np.ones(need.size)
            if net is not None:
                # homogeneous of degree 1: from the O(1) parts, times e^{ℓ_j − max ℓ} (only
                # the ratios between neurons matter, and they hold at any scale)
                a0s, u0s = np.asarray(lp.a_hat, float)[need], np.asarray(lp.u_hat, float)[need]
                ell = np.asarray(lp.ell, float)
                with np.errstate(under="ignore", invalid="ignore"):
                    top = ell[np.isfinite(ell)].max(initial=-np.inf)
                    scale = np.exp(ell[need] - (top if np.isfinite(top) else 0.0))
            else:
                a0s, u0s = _seed_initial_rows(data, m, seed_used, init, need, bits, signs)
            for k, j in enumerate(need):
                c = abs(_alignment_amplitude(a0s[k], u0s[k], y, x_sq))
                amp0_cache[int(j)] = c * float(scale[k])
        return np.array([amp0_cache[int(j)] for j in rows])

    # Exact amplitudes through earlier events, computed only when a tie needs them:
    # log_c[j] = log C_j with log|a_j(t)| = log(1/λ) p_j(τ) + log C_j on the current
    # plateau (up to powers of λ), valid after the first `replayed[0]` events.
    log_c = np.full(m, -math.inf)
    replayed = [-1]
    ev_gam: list[np.ndarray] = []  # every neuron's rate before each event

    def replay(k_event: int) -> None:
        """Bring ``log_c`` up to date with events ``< k_event`` (see :func:`_group_flow`)."""
        if replayed[0] < 0:
            rows = np.flatnonzero(initial_rates > 0)
            for lo in range(0, rows.size, _AMPLITUDE_CHUNK):
                chunk = rows[lo : lo + _AMPLITUDE_CHUNK]
                log_c[chunk] = np.log(amplitudes(chunk))
            replayed[0] = 0
        act_event = np.full(m, np.iinfo(np.int64).max)
        for e, grp in enumerate(ev_neurons):
            act_event[list(grp)] = e
        for e in range(replayed[0], k_event):
            js = np.array(ev_neurons[e], dtype=np.int64)
            idx = np.flatnonzero(fitted_at == e)
            right = signs[:, None] * y[idx][None, :] > 0  # (m, K): samples each sign can fit
            member = bits[js][:, idx] & right[js]
            pre, post = ev_gam[e], ev_rates[e]
            cand = np.flatnonzero((act_event > e) & (pre > 0) & (post > 0))
            small, who = [], []
            for j in cand:
                mask = bits[j][idx] & right[j]
                if mask.any():
                    small.append(_Small(float(signs[j]), float(pre[j]), float(post[j]), mask))
                    who.append(j)
            if small:
                *_, log_t = _group_flow(
                    signs[js], log_c[js], pre[js], member, y[idx], x_sq[idx], n, tuple(small)
                )
                log_c[np.array(who)] += log_t
        replayed[0] = max(replayed[0], k_event)

    def start_log_c(js: np.ndarray, k_event: int) -> np.ndarray:
        """``log C_j`` of neurons activating at event ``k_event``."""
        if changed[js].any():
            replay(k_event)
            return log_c[js].copy()
        return np.log(amplitudes(js))

    def remove(idx: np.ndarray) -> list[int]:
        """Mark ``idx`` fitted and take them out of every other neuron's remaining set.

        Returns the neurons that lost samples (the event's competitors).
        """
        nonlocal y2_left
        touched: list[int] = []
        lost_q.clear()
        for sgn in (1.0, -1.0):
            sub = idx[np.sign(y[idx]) == sgn]
            if sub.size == 0:
                continue
            avail[sgn][sub] = False
            y2_left -= float((y[sub] ** 2).sum())
            w_sub = None if uniform else weight[sub]
            q_sub = None if q_uniform else q_all[sub]
            for k in np.flatnonzero((signs == sgn) & ~done & (count > 0)):
                hit = bits[k][sub]
                c = np.count_nonzero(hit)
                if c == 0:
                    continue
                count[k] -= c
                touched.append(int(k))
                lost = c * q0 if q_sub is None else float(q_sub[hit].sum())
                lost_q[int(k)] = lost_q.get(int(k), 0.0) + lost
                if uniform:
                    mass[k] = count[k] * w0
                else:
                    mass[k] = 0.0 if count[k] == 0 else max(mass[k] - w_sub[hit].sum(), 0.0)
                if count[k] > 0:
                    changed[k] = True
        return touched

    while True:
        gam = rates_now()
        gam[done] = 0.0
        live = np.flatnonzero(gam > 0)
        if live.size == 0:
            break
        t_hit = tau - p[live] / gam[live]
        t_min = float(t_hit.min())
        group = live[t_hit <= t_min * (1.0 + tie_rtol)]
        spread = float((t_hit[np.isin(live, group)].max() - t_min) / t_min)
        p += gam * (t_min - tau)
        tau = t_min
        p[group] = 0.0
        k_event = len(ev_tau)
        sets = [np.flatnonzero(bits[j] & avail[signs[j]]) for j in group]
        done[group] = True
        if len(sets) == 1:
            union = sets[0]
        else:  # a mask, not np.unique: the sets can hold a good fraction of n samples
            in_union = np.zeros(n, dtype=bool)
            for idx in sets:
                in_union[idx] = True
            union = np.flatnonzero(in_union)
        if len(group) == 1:
            j = int(group[0])
            q = float((y[union] ** 2 / x_sq[union]).sum())
            a_final[j] = signs[j] * q**0.25
            fitted_by[union] = j
            norm_sq += 2.0 * math.sqrt(q)
        else:
            tie_amp = np.full(len(group), np.nan)
            tie_a = np.zeros(len(group))
            tie_fit = np.zeros(len(group), dtype=np.int64)
            residual = np.nan
            member = np.zeros((len(group), union.size), dtype=bool)
            for g_i, idx in enumerate(sets):
                member[g_i, np.searchsorted(union, idx)] = True
            shared_mask = member.sum(axis=0) > 1
            # Connected components: neurons linked by a shared sample.
            comp = np.arange(len(group))
            for col in np.flatnonzero(shared_mask):
                js = np.flatnonzero(member[:, col])
                roots = {int(comp[js_i]) for js_i in js}
                lo = min(roots)
                comp[np.isin(comp, list(roots))] = lo
            for root in np.unique(comp):
                gi = np.flatnonzero(comp == root)
                cols = np.flatnonzero(member[gi].any(axis=0))
                idx = union[cols]
                if gi.size == 1:
                    j = int(group[gi[0]])
                    q = float((y[idx] ** 2 / x_sq[idx]).sum())
                    a_final[j] = signs[j] * q**0.25
                    fitted_by[idx] = j
                    norm_sq += 2.0 * math.sqrt(q)
                    tie_a[gi[0]] = a_final[j]
                    tie_fit[gi[0]] = idx.size
                    continue
                js = group[gi]
                if not resolve_ties:
                    norm_sq = math.nan
                    fitted_by[idx] = -2  # fitted by the unresolved group
                    continue
                lc = start_log_c(js, k_event)
                a_c, u_c, res, s0, _ = _group_flow(
                    signs[js], lc, gam[js], member[np.ix_(gi, cols)], y[idx], x_sq[idx], n
                )
                tie_amp[gi] = np.exp(lc + gam[js] * s0 - math.log(_TIE_EPS))
                residual = res if math.isnan(residual) else max(residual, res)
                a_final[js] = a_c
                tie_a[gi] = a_c
                tie_fit[gi] = np.count_nonzero(u_c > 0, axis=1)
                best = np.argmax(a_c[:, None] * u_c / y[idx][None, :], axis=0)
                fitted_by[idx] = js[best]
                nz_r, nz_c = np.nonzero(u_c)
                tie_rows.append(js[nz_r])
                tie_cols.append(idx[nz_c])
                tie_vals.append(u_c[nz_r, nz_c])
                norm_sq += float((a_c**2).sum() + (u_c**2 / x_sq[idx][None, :]).sum())
            ties.append(
                Tie(
                    event=k_event,
                    tau=tau,
                    neurons=tuple(int(j) for j in group),
                    spread=spread,
                    samples=int(union.size),
                    shared=int(shared_mask.sum()),
                    amplitudes=tie_amp,
                    a=tie_a,
                    fitted=tie_fit,
                    residual=float(residual),
                )
            )
        fitted_at[union] = k_event
        rivals = remove(union)
        for k in rivals:
            rival_rows.append((k_event, k, -float(p[k]), lost_q[k]))
        if rivals:
            k_near = rivals[int(np.argmax(p[rivals]))]
            ev_gap.append(float(-p[k_near]))
            ev_rival.append(k_near)
        else:
            ev_gap.append(math.inf)
            ev_rival.append(-1)
        ev_tau.append(tau)
        ev_neurons.append(tuple(int(j) for j in group))
        ev_fitted.append(int(union.size))
        ev_loss.append(max(y2_left, 0.0) / (2 * n))
        after = rates_now()
        after[done] = 0.0
        ev_rates.append(after)
        ev_gam.append(gam)

    interpolates = bool((fitted_at[labelled] >= 0).all())
    mn = _min_norm_sq(y, np.sqrt(x_sq))
    if ev_loss:
        # Recompute the last plateau exactly (the running sum drifts by rounding).
        ev_loss[-1] = float((y[fitted_at < 0] ** 2).sum()) / (2 * n)
    wall = time.perf_counter() - t_start
    return LimitResult(
        tau=np.asarray(ev_tau, dtype=np.float64),
        event_neurons=tuple(ev_neurons),
        event_fitted=np.asarray(ev_fitted, dtype=np.int64),
        plateau_loss=np.asarray(ev_loss, dtype=np.float64),
        rates=np.asarray(ev_rates, dtype=np.float64).reshape(len(ev_rates), m),
        competitor_gap=np.asarray(ev_gap, dtype=np.float64),
        competitor=np.asarray(ev_rival, dtype=np.int64),
        rivals=np.asarray(rival_rows, dtype=np.float64).reshape(len(rival_rows), 4),
        initial_rates=initial_rates,
        initial_loss=initial_loss,
        signs=signs,
        fitted_at=fitted_at,
        fitted_by=fitted_by,
        a=a_final,
        interpolates=interpolates,
        norm_sq=float(norm_sq),
        min_norm_sq=mn,
        ratio=_norm_ratio(float(norm_sq), mn, interpolates)[0],
        ties=tuple(ties),
        tie_rtol=tie_rtol,
        ties_resolved=bool(resolve_ties),
        wall_s=wall,
        provenance=_provenance(
            method="jump_process",
            source=source,
            seed=seed_used,
            m=m,
            n=n,
            init=init,
            data=data.describe(),
            tie_rtol=tie_rtol,
            orthogonality_tol=ORTHOGONALITY_TOL,
            tie_eps=_TIE_EPS,
            tie_ode_rtol=_TIE_RTOL_ODE,
            resolve_ties=bool(resolve_ties),
        ),
        _y=y,
        _x_sq=x_sq,
        _tie_u=(_cat(tie_rows, np.int64), _cat(tie_cols, np.int64), _cat(tie_vals, np.float64)),
    )

"""What every finite-λ dynamics (flow, descent, SGD) shares: stopping rules, recording, result.

* :class:`StopRules` turns the user's options (``t_max``, ``tau_max``,
  ``loss_tol``, ``stall_rate``) into checked thresholds, with the defaults
  documented in :func:`reluflow.gradient_flow`.
* :class:`Recorder` samples a run on a geometric grid in ``t`` (plus whatever
  the dynamics adds, e.g. kink events) and tracks the conservation drift.
* :class:`KinkLog` collects switching events; :func:`make_trajectory` builds
  the :class:`~reluflow.trajectory.Trajectory` every dynamics returns.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _validate as V
from .._provenance import provenance
from ..data import Dataset
from ..errors import InputError
from ..network import Network
from ..trajectory import SolverStats, Trajectory

# statuses that mean "the requested stopping criterion was reached"
SUCCESS = ("t_max", "loss_tol", "stalled", "steps", "noise_floor")

STALLED_MESSAGE = (
    "nothing moves any more (every neuron's relative speed < stall_rate and "
    "the loss can fall by less than loss_tol, or fell by less than that while t doubled)"
)


# successive zero-length switching events after which a solver gives up (chattering)
MAX_STUCK = 200


def stuck_message(t: float, stuck: int) -> str:
    """The ``failed`` message of a solver that made no progress in time over ``stuck`` events."""
    return (
        f"the flow is stuck at a switching point at t = {t:.6g}: "
        f"{stuck} successive kink events without progress in time "
        "(chattering the sliding-mode solver could not resolve)"
    )


def log_inv_scale(net: Network) -> float:
    """``log(1/λ)``, the unit of ``τ``, exact at any scale (NaN for ``λ >= 1``)."""
    return net.log_inv_scale


def activation_level(data: Dataset) -> float:
    """The output weight ``L`` at which a neuron counts as activated (docs/any-scale.md).

    ``L = ½ min_i sqrt(|y_i| / ‖x_i‖)`` over the labelled samples: half the
    smallest ``|a_j|`` an activated neuron can end with in the λ → 0 limit (one
    that fits a single sample ``i`` has ``a_j⁴ = y_i² / ‖x_i‖²``), so every neuron
    the limit activates crosses it, at a time that converges to its limit
    activation time in ``τ``, and a neuron that stays at its saddle never does.
    """
    y = np.abs(np.asarray(data.y, dtype=float))
    x = np.sqrt(np.asarray(data.sq_norms(), dtype=float))
    ok = y > 0
    if not ok.any():
        return math.inf
    return 0.5 * float(np.sqrt(y[ok] / x[ok]).min())


def max_steps_message(max_steps: int, t: float, net: Network) -> str:
    return (
        f"stopped after max_steps = {max_steps} steps at t = {t:.6g} "
        f"(tau = {t / log_inv_scale(net):.4g}) "
        "before any stopping criterion: the result is incomplete; raise max_steps"
    )


class Minibatches:
    """Minibatch SGD's sample weights, epoch by epoch (a fresh permutation per epoch).

    ``next()`` gives ``None`` for full-batch descent, otherwise an (n,) array with
    ``1 / batch_size`` on the step's samples and 0 elsewhere (reused between calls).
    """

    def __init__(self, n: int, batch_size: int | None, batch_seed: int):
        from .. import _rng

        self.n, self.batch_size = n, batch_size
        self._rng = _rng.stream(batch_seed, _rng.SGD_BATCHES) if batch_size else None
        self._order = np.zeros(0, dtype=np.int64)
        self._pos = 0
        self._w = np.zeros(n)

    def next(self) -> np.ndarray | None:
        if self.batch_size is None:
            return None
        if self._pos + self.batch_size > self._order.size:
            self._order = self._rng.permutation(self.n)  # type: ignore[union-attr]
            self._pos = 0
        self._w[:] = 0.0
        self._w[self._order[self._pos : self._pos + self.batch_size]] = 1.0 / self.batch_size
        self._pos += self.batch_size
        return self._w


def descent_stop(
    loss: float,
    a: np.ndarray,
    k: int,
    t: float,
    rules: StopRules,
    max_steps: int,
    steps: int | None,
    net: Network,
) -> tuple[str, str] | None:
    """The stopping rules every descent loop checks before step ``k`` (at ``t = k η``).

    Returns ``(status, message)`` for the first rule that fires, else None:
    divergence, ``loss_tol``, ``t_max``, then the step budget (``steps`` requested,
    or ``max_steps`` exhausted).
    """
    if not math.isfinite(loss) or not np.isfinite(a).all():
        return "diverged", f"descent diverged (non-finite values) at step {k}, t = {t:.6g}"
    if loss <= rules.loss_tol:
        return "loss_tol", f"loss {loss:.3e} <= loss_tol = {rules.loss_tol:.3e}"
    if t >= rules.t_end:
        return "t_max", f"reached the requested time t = {t:.6g}"
    if k >= max_steps:
        if steps is not None:
            return "steps", f"ran the requested {steps} steps"
        return "max_steps", max_steps_message(max_steps, t, net)
    return None


class StabilityCheck:
    """Descent's stability watch: the sharpness at steps 1, 2, 4, 8, … and one
    :class:`~reluflow.errors.StabilityWarning` the first time ``lr > 2 / sharpness``.

    ``factor`` converts the step and the sharpness to the caller's loss convention;
    ``log`` holds the measured ``(step, sharpness)``.
    """

    def __init__(self, enabled: bool, lr: float, factor: float):
        self.enabled, self.lr, self.factor = enabled, lr, factor
        self.log: list[tuple[int, float]] = []
        self._next = 1
        self._warned = False

    def __call__(self, k: int, measure, stacklevel: int) -> None:
        """At step ``k``: measure (``measure()``: the sharpness) when due, warn once."""
        if not self.enabled or k + 1 < self._next:
            return
        s = measure()
        self.log.append((k, s))
        if not self._warned and s > 0 and self.lr > 2.0 / s:
            import warnings

            from ..errors import StabilityWarning

            self._warned = True
            f, lr = self.factor, self.lr
            warnings.warn(
                StabilityWarning(
                    f"lr = {lr / f:g} exceeds 2 / sharpness = {2.0 / (s * f):.4g} at step {k} "
                    f"(sharpness {s * f:.4g}): gradient descent may be unstable; "
                    "use a smaller lr to follow the gradient flow"
                ),
                stacklevel=stacklevel + 1,
            )
        self._next *= 2


class StepBar:
    """The descent loops' progress bar (tqdm): steps against the budget, and the loss.

    ``total`` is ``steps`` or the budget ``max_steps`` (the ETA is then an upper
    bound); every half second the postfix shows the loss and, for SGD with its
    noise-floor rule ``floor``, the windows settled and the fewest steps before it
    can stop. ``progress=False`` draws nothing.
    """

    def __init__(self, progress: bool, total: int, sgd: bool, floor: Any = None):
        from tqdm.auto import tqdm

        self.progress, self.floor = progress, floor
        self.bar = tqdm(
            total=total,
            disable=not progress,
            desc="sgd" if sgd else "descent",
            unit=" steps",
            unit_scale=True,
            leave=False,
        )
        self.shown = time.perf_counter()

    def step(self, loss: float) -> None:
        """One step done; ``loss`` is the loss before it."""
        self.bar.update(1)
        if self.progress and time.perf_counter() - self.shown > 0.5:
            self.shown = time.perf_counter()
            note = f"loss={loss:.3e}"
            if self.floor is not None:
                f = self.floor
                note += (
                    f" noise floor: {f.windows_settled}/{f.PATIENCE} windows settled,"
                    f" stop in >= {f.earliest_stop} steps"
                )
            self.bar.set_postfix_str(note, refresh=False)

    def close(self) -> None:
        self.bar.close()


def noise_floor_message(window: int, patience: int, loss: float) -> str:
    return (
        f"SGD reached its noise floor: over {patience} windows of "
        f"{window} steps the mean loss ({loss:.3e} now) stopped falling "
        "beyond its standard error and no neuron grew"
    )


@dataclass(frozen=True)
class StopRules:
    """Checked stopping thresholds of one run.

    Attributes:
        t_end: stop time in ``t`` (``inf`` if none).
        loss_tol: loss threshold (default ``1e-10 · mean(y²)/2``).
        stall_rate: relative speed below which a neuron counts as still
            (default a thousandth of ``rate_unit``).
        rate_unit: slowest possible growth rate of a neuron in the jump process,
            ``min_i |y_i| ‖x_i‖ / n``.
        gamma_all: growth rate of one neuron covering every sample,
            ``sqrt(Σ_i y_i² ‖x_i‖²) / n``: the characteristic time unit.
    """

    t_end: float
    loss_tol: float
    stall_rate: float
    rate_unit: float
    gamma_all: float

    @classmethod
    def build(
        cls,
        data: Dataset,
        net: Network,
        t_max: float | None,
        tau_max: float | None,
        loss_tol: float | None,
        stall_rate: float | None,
    ) -> StopRules:
        ends = []
        if t_max is not None:
            ends.append(V.finite_float("t_max", t_max, low=0.0, low_open=True))
        if tau_max is not None:
            if net.scale >= 1:
                raise InputError(
                    f"tau_max needs scale < 1 (tau = t / log(1/scale)), got scale = {net.scale}"
                )
            ends.append(
                V.finite_float("tau_max", tau_max, low=0.0, low_open=True) * log_inv_scale(net)
            )
        y, n = data.y, data.n
        L0 = float(y @ y) / (2 * n)
        if loss_tol is None:
            loss_tol = 1e-10 * L0 if L0 > 0 else 0.0
        else:
            loss_tol = V.finite_float("loss_tol", loss_tol, low=0.0, allowed="a finite number >= 0")
        weight = np.abs(y) * np.sqrt(data.sq_norms())
        rate_unit = float(weight[weight > 0].min()) / n if (weight > 0).any() else 1.0 / n
        if stall_rate is None:
            stall_rate = 1e-3 * rate_unit
        else:
            stall_rate = V.finite_float(
                "stall_rate", stall_rate, low=0.0, allowed="a finite number >= 0"
            )
        return cls(
            t_end=min(ends) if ends else math.inf,
            loss_tol=loss_tol,
            stall_rate=stall_rate,
            rate_unit=rate_unit,
            gamma_all=math.sqrt(float((weight**2).sum())) / n or 1.0,
        )

    def stall_watch(self) -> StallWatch:
        """A fresh detector of "nothing moves any more" for one run."""
        return StallWatch(self)


class StallWatch:
    """Decides when a run has stopped moving.

    A run is still once every live neuron's relative speed
    ``max|dθ_j/dt| / max|θ_j|`` is at most ``stall_rate``. It then counts as
    stalled when ``‖∇L‖² / rate_unit <= loss_tol`` (the loss cannot fall by
    more than ``loss_tol`` any more), or when it has stayed still while ``t``
    doubled and the loss fell by at most ``loss_tol`` meanwhile. The second rule
    covers the gradient's noise floor: an explicit solver at loose ``rtol`` (or
    descent at a large step) hovers at a distance ``∝ rtol`` from the stationary
    point, where ``‖∇L‖²`` stops decreasing.
    """

    def __init__(self, rules: StopRules):
        self.rules = rules
        self.mark_t = -1.0
        self.mark_loss = math.inf

    def check(
        self,
        v: np.ndarray,
        yv: np.ndarray,
        data: Dataset,
        m: int,
        t: float,
        loss: float,
        weight: np.ndarray | None = None,
    ) -> bool:
        """``v``, ``yv``: velocity and state as flat ``(a, u)`` vectors at time ``t``.

        ``weight``: ``e^{2ℓ_j}`` when neuron ``j`` is stored as ``e^{ℓ_j}`` times
        ``yv``'s entries (the relative speeds do not depend on it, ``‖∇L‖²`` does).
        """
        rules, n = self.rules, data.n
        size = neuron_scale(yv, m, n)
        speed = neuron_scale(v, m, n)
        live = size > 0
        if not (speed[live] <= rules.stall_rate * size[live]).all():
            self.mark_t = -1.0
            return False
        per = v[:m] ** 2 + data.quad_form(v[m:].reshape(m, n))
        speed_sq = float(per.sum() if weight is None else per @ weight)
        if speed_sq <= rules.loss_tol * rules.rate_unit:
            return True
        if self.mark_t < 0:
            self.mark_t, self.mark_loss = t, loss
            return False
        return t > self.mark_t and t >= 2 * self.mark_t and self.mark_loss - loss <= rules.loss_tol


class ChatterWatch:
    """Full-batch descent's stall rule on averages, for iterates that chatter across kinks.

    Where the flow slides along a kink (a coordinate ``u_ji`` held at 0 by gradients
    of opposite signs on its two sides, docs/sliding-modes.md), explicit steps cannot
    stay on it: descent crosses the kink every step or few, its gradient alternates
    and stays ``O(1)``, and :class:`StallWatch`'s instantaneous speeds never fall
    below ``stall_rate`` although the iterate no longer moves on average (its mean
    motion is the flow's sliding motion, plus ``O(η)``). This rule looks at windows
    ``[K, 2K)`` of steps, ``K = 8, 16, 32, …`` (``t`` doubles from one window to the
    next), and the run has stalled at step ``2K`` when

    * every live neuron's mean relative speed over the window,
      ``max|θ_j(2K) − θ_j(K)| / (K η) / max|θ_j(2K)|``, is at most ``stall_rate``
      (a neuron leaving a saddle grows at a relative rate ``>= rate_unit``, a
      thousand times that), and
    * the window's mean loss fell from the previous window's by at most
      ``max(loss_tol, 2σ)``, ``σ`` the standard error of that difference from the
      8 block means of each window (the oscillation of the loss that the chatter
      causes; a loss that still falls smoothly falls by more than that).

    ``kinks`` counts the switches over the last window, for the message.
    """

    BLOCKS = 8

    def __init__(self, rules: StopRules, m: int, n: int, lr: float):
        self.rules, self.m, self.n, self.lr = rules, m, n, lr
        self.start = 8  # the current window is [start, 2 start)
        self.mark: np.ndarray | None = None
        self.sums = np.zeros(self.BLOCKS)
        self.prev: tuple[float, float] | None = None
        self.kinks = 0
        self._kinks_mark = 0
        self.mean_loss = math.nan

    def check(self, k: int, yv_of: Any, loss: float, kinks: int) -> bool:
        """Step ``k`` with loss ``loss`` and ``kinks`` switches so far; ``yv_of()``: flat ``(a, u)``.

        True when the run has stalled by the rule above (checked at ``k = 2K``).
        """
        if k < self.start:
            return False
        if k == self.start and self.mark is None:
            self.mark, self._kinks_mark = yv_of().copy(), kinks
        if k < 2 * self.start:
            self.sums[(k - self.start) * self.BLOCKS // self.start] += loss
            return False
        # k == 2K: close the window [K, 2K), open [2K, 4K)
        K = self.start
        blocks = self.sums / (K / self.BLOCKS)
        now = (float(blocks.mean()), float(blocks.std(ddof=1)) / math.sqrt(self.BLOCKS))
        yv = yv_of()
        v = (yv - self.mark) / (K * self.lr)
        size = neuron_scale(yv, self.m, self.n)
        speed = neuron_scale(v, self.m, self.n)
        live = size > 0
        still = bool((speed[live] <= self.rules.stall_rate * size[live]).all())
        prev, self.prev = self.prev, now
        self.kinks, self._kinks_mark = kinks - self._kinks_mark, kinks
        self.mean_loss = now[0]
        self.start, self.mark = 2 * K, yv.copy()
        self.sums[:] = 0.0
        self.sums[0] = loss
        if not still or prev is None:
            return False
        return prev[0] - now[0] <= max(self.rules.loss_tol, 2.0 * math.hypot(prev[1], now[1]))

    def message(self) -> str:
        return (
            f"nothing moves any more on average: over the last doubling of t "
            f"({self.start // 2} steps) every neuron's mean relative speed was < stall_rate and "
            f"the mean loss ({self.mean_loss:.6e}) fell by less than its oscillation or "
            f"loss_tol; descent chatters across kinks ({self.kinks} switches in that window: "
            "a sliding mode of the flow, which the steps cross instead of following)"
            if self.kinks
            else f"nothing moves any more on average: over the last doubling of t "
            f"({self.start // 2} steps) every neuron's mean relative speed was < stall_rate and "
            f"the mean loss ({self.mean_loss:.6e}) fell by less than its oscillation or loss_tol"
        )


def neuron_scale(yv: np.ndarray, m: int, n: int) -> np.ndarray:
    """``max(|a_j|, max_i |u_ji|)`` per neuron of a flat ``(a, u)`` vector."""
    return np.maximum(np.abs(yv[:m]), np.abs(yv[m:].reshape(m, n)).max(axis=1))


class Recorder:
    """Collects trajectory samples: a geometric grid in ``t``, events, and the end.

    Rows are stored at any scale: ``ln |a_j|`` (and ``|a_j|``, which underflows to 0
    where the neuron is below float64's range), ``‖w_j‖``, the loss and the
    active counts. The conservation drift is computed from each neuron's O(1)
    part, ``a_j² − ‖w_j‖² = e^{2ℓ_j}(â_j² − ‖ŵ_j‖²)``, so it measures rounding,
    not underflow.
    """

    def __init__(self, data: Dataset, net: Network, points_per_decade: int, t0: float):
        self.data, self.net = data, net
        self.ratio = 10.0 ** (1.0 / points_per_decade)
        self.next_t = t0
        self.t: list[float] = []
        self.loss: list[float] = []
        self.log_a: list[np.ndarray] = []
        self.w: list[np.ndarray] = []
        self.act: list[np.ndarray] = []
        p = net.log_params
        self.ell0 = np.asarray(p.ell, dtype=float)
        self.wps_hat0 = np.asarray(p.w_perp_sq_hat, dtype=float)
        self.balance0_hat = p.a_hat**2 - p.w_perp_sq_hat - data.quad_form(p.u_hat)
        self.drift = 0.0

    def w_perp_sq_hat(self, ell: np.ndarray) -> np.ndarray:
        """``‖w_j^⊥‖²`` in units of ``e^{2ℓ_j}`` (it is constant in absolute terms)."""
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            out = self.wps_hat0 * np.exp(np.minimum(2.0 * (self.ell0 - ell), 700.0))
        return np.where(self.wps_hat0 == 0, 0.0, out)

    def add(self, t: float, a: np.ndarray, u: np.ndarray, mask: np.ndarray) -> None:
        """Add a row from the float64 state ``(a, u)`` (dynamics that run in float64)."""
        size = np.maximum(np.abs(a), np.abs(u).max(axis=1, initial=0.0))
        safe = np.where(size > 0, size, 1.0)
        with np.errstate(divide="ignore"):
            ell = np.where(size > 0, np.log(safe), -np.inf)
        self.add_scaled(t, ell, a / safe, u / safe[:, None], mask)

    def add_scaled(
        self, t: float, ell: np.ndarray, a_hat: np.ndarray, u_hat: np.ndarray, mask: np.ndarray
    ) -> None:
        """Add a row from the state ``(a, u) = e^{ℓ}(â, û)``."""
        with np.errstate(under="ignore"):
            w2 = np.exp(2.0 * ell)
        r = (w2 * a_hat) @ (u_hat * mask) - self.data.y
        wsq_hat = self.w_perp_sq_hat(ell) + self.data.quad_form_rows(u_hat)
        self.extend_scaled(
            np.array([t]),
            np.array([float(r @ r) / (2 * r.shape[0])]),
            ell[None, :],
            a_hat[None, :],
            wsq_hat[None, :],
            mask.sum(axis=1).astype(np.int64)[None, :],
        )

    def extend(
        self,
        t: np.ndarray,
        loss: np.ndarray,
        a: np.ndarray,
        wsq: np.ndarray,
        n_active: np.ndarray,
    ) -> None:
        """Append rows computed elsewhere in float64: ``a`` and ``‖w‖²`` (``w^⊥`` included), (T, m)."""
        a = np.asarray(a, dtype=float)
        wsq = np.maximum(np.asarray(wsq, dtype=float), 0.0)
        size = np.maximum(np.abs(a), np.sqrt(wsq))
        safe = np.where(size > 0, size, 1.0)
        with np.errstate(divide="ignore"):
            ell = np.where(size > 0, np.log(safe), -np.inf)
        self.extend_scaled(t, loss, ell, a / safe, wsq / safe**2, n_active)

    def extend_scaled(
        self,
        t: np.ndarray,
        loss: np.ndarray,
        ell: np.ndarray,
        a_hat: np.ndarray,
        wsq_hat: np.ndarray,
        n_active: np.ndarray,
    ) -> None:
        """Append rows computed elsewhere, neuron ``j`` as ``e^{ℓ_j}`` times O(1) parts.

        ``ell``, ``a_hat`` (``a = e^{ℓ} â``), ``wsq_hat`` (``‖w‖² = e^{2ℓ} ‖ŵ‖²``,
        ``w^⊥`` included) and the active counts: shape (T, m).
        """
        with np.errstate(divide="ignore", under="ignore", over="ignore", invalid="ignore"):
            dev = np.abs(
                a_hat**2
                - wsq_hat
                - self.balance0_hat[None, :]
                * np.exp(np.minimum(2.0 * (self.ell0[None, :] - ell), 700.0))
            )
            size = a_hat**2 + wsq_hat
            fin = np.isfinite(ell)
            log_dev = np.where(fin & (dev > 0), 2.0 * ell + np.log(dev), -np.inf)
            log_size = np.where(fin & (size > 0), 2.0 * ell + np.log(size), -np.inf)
            top = log_size.max(axis=1)
            ok = np.isfinite(top)
            if ok.any():
                rel = np.exp(log_dev.max(axis=1)[ok] - top[ok])
                self.drift = max(self.drift, float(rel.max()))
            log_a = np.where(fin, ell + np.log(np.abs(a_hat)), -np.inf)
            w = np.exp(np.where(fin, ell, -np.inf)) * np.sqrt(np.maximum(wsq_hat, 0.0))
        self.t.extend(float(x) for x in t)
        self.loss.extend(float(x) for x in loss)
        self.log_a.extend(log_a)
        self.w.extend(w)
        self.act.extend(np.asarray(n_active, dtype=np.int64))

    def grid_points(self, t_lo: float, t_hi: float) -> list[float]:
        """The grid points in ``(t_lo, t_hi]`` not yet handed out."""
        pts = []
        while self.next_t <= t_hi:
            if self.next_t > t_lo:
                pts.append(self.next_t)
            self.next_t *= self.ratio
        return pts

    def samples(self) -> dict[str, np.ndarray]:
        log_a = np.asarray(self.log_a)
        with np.errstate(under="ignore"):
            a_abs = np.exp(log_a)
        return dict(
            t=np.asarray(self.t),
            loss=np.asarray(self.loss),
            a_abs=a_abs,
            w_norm=np.asarray(self.w),
            n_active=np.asarray(self.act),
            log_abs_a=log_a,
        )


class KinkLog:
    """Switching events of a run: time, neuron, sample, became active, entered sliding."""

    def __init__(self, n: int):
        self.n = n
        self.t: list[np.ndarray] = []
        self.flat: list[np.ndarray] = []
        self.up: list[np.ndarray] = []
        self.sliding: list[np.ndarray] = []
        self.count = 0

    def add(
        self, t: float, flat: np.ndarray, up: np.ndarray, sliding: np.ndarray | None = None
    ) -> None:
        """Record the coordinates ``flat`` (flat indices ``j·n + i``) switching at ``t``."""
        if flat.size:
            self.count += flat.size
            self.t.append(np.full(flat.size, t))
            self.flat.append(np.asarray(flat, dtype=np.int64))
            self.up.append(np.asarray(up, dtype=bool))
            self.sliding.append(
                np.zeros(flat.size, dtype=bool)
                if sliding is None
                else np.asarray(sliding, dtype=bool)
            )

    def add_many(self, t: np.ndarray, flat: np.ndarray, up: np.ndarray) -> None:
        """Record switches at the times ``t`` (one per coordinate), none entering sliding."""
        if flat.size:
            self.count += flat.size
            self.t.append(np.asarray(t, dtype=float))
            self.flat.append(np.asarray(flat, dtype=np.int64))
            self.up.append(np.asarray(up, dtype=bool))
            self.sliding.append(np.zeros(flat.size, dtype=bool))

    def __len__(self) -> int:
        return self.count

    def arrays(self) -> dict[str, np.ndarray]:
        def cat(xs: list[np.ndarray], dtype: Any) -> np.ndarray:
            return np.concatenate(xs) if xs else np.zeros(0, dtype=dtype)

        flat = cat(self.flat, np.int64)
        return dict(
            kink_t=cat(self.t, float),
            kink_neuron=flat // self.n,
            kink_sample=flat % self.n,
            kink_up=cat(self.up, bool),
            kink_sliding=cat(self.sliding, bool),
        )


def run_provenance(dynamics: str, data: Dataset, net: Network, **options: Any) -> dict[str, Any]:
    """Provenance of one run: package version, dynamics, data, network and every option."""
    return provenance(
        dynamics=dynamics,
        scale=net.scale,
        log10_scale=net.log10_scale,
        m=net.m,
        n=data.n,
        init=net.init,
        seed=net.seed,
        data=data.describe(),
        **options,
    )


def make_trajectory(
    dynamics: str,
    *,
    data: Dataset,
    net: Network,
    final: Network,
    samples: dict[str, np.ndarray],
    status: str,
    message: str,
    drift: float,
    stats: SolverStats,
    kinks: dict[str, np.ndarray],
    wall0: float,
    provenance: dict[str, Any],
    activation_t: np.ndarray | None = None,
) -> Trajectory:
    """The :class:`Trajectory` of a finished run (``samples`` as :meth:`Recorder.samples`).

    ``activation_t``: activation times located by the dynamics (the flow), or None.
    """
    return Trajectory(
        dynamics=dynamics,
        tau=samples["t"] / log_inv_scale(net),
        activation_t=activation_t,
        activation_level=activation_level(data),
        final=final,
        initial=net,
        success=status in SUCCESS,
        status=status,
        message=message or status,
        conservation_drift=drift,
        stats=stats,
        wall_s=time.perf_counter() - wall0,
        provenance=provenance,
        **samples,
        **kinks,
    )

"""Gradient flow on general (non-orthogonal) data with the compiled kernel.

The algorithm is the reference loop of :mod:`reluflow.flow` (same steps, same
kinks, same sliding modes, same recording and stopping rules, results equal to
rounding); the smooth steps run in :mod:`reluflow._engines.general_numba` and the
switching events (a kink, a sliding fraction leaving [0, 1]) are resolved here
with the reference's own helpers (:mod:`reluflow._engines.events`). Before the solver,
the initial small-weight phase is solved in closed form
(:mod:`reluflow._engines.general_phase`): there every neuron is alone and linear, and
its kinks, the bulk of all kinks, get exact times one neuron at a time without
cutting anyone else's step. After it, a step whose events all belong to small neurons
(outputs below eps of the labels) is kept for the others and the small neurons are
integrated again over it one at a time (:mod:`reluflow._engines.small_neurons`). See
docs/general-data.md.

BLAS threads: the kernel's ``m × n`` by ``n × n`` products are small; on a
loaded machine a multithreaded BLAS spends more time synchronising than
computing on them. :func:`blas_threads` picks the thread count from the size
of the product, and the run holds it with ``threadpoolctl``.
"""

from __future__ import annotations

import os

import numpy as np
from scipy.integrate import RK45
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from ..data import Dataset
from ..flow import _initial_step
from ..network import Network
from ..trajectory import SolverStats, Trajectory
from . import events as E
from . import general_numba as NB
from . import small_neurons as SN
from .dynamics import (
    MAX_STUCK,
    STALLED_MESSAGE,
    KinkLog,
    Recorder,
    StopRules,
    log_inv_scale,
    make_trajectory,
    max_steps_message,
    run_provenance,
    stuck_message,
)
from .field import Field
from .general_phase import general_initial_phase

_A, _B, _E, _P = RK45.A, RK45.B, RK45.E, RK45.P
# below this many multiply-adds per product (m n²) one BLAS thread is fastest
_FLOPS_PER_THREAD = 4e7


def blas_threads(m: int, n: int, cores: int | None = None) -> int:
    """BLAS threads for the ``m × n`` by ``n × n`` product: one per ``4·10⁷`` multiply-adds.

    Measured on a shared 2-core machine: at ``m n² = 1.6·10⁵`` (n = 100, m = 16)
    two OpenBLAS threads made each product about 10× slower than one; the
    product pays for a second thread only from a few ``10⁷`` multiply-adds on
    (``n ≈ 1300`` at ``m = 24``). Capped by the cores this process may use.
    """
    if cores is None:
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            cores = os.cpu_count() or 1
    return int(max(1, min(cores, (m * n * n) // _FLOPS_PER_THREAD)))


def gradient_flow_general(
    data: Dataset,
    net: Network,
    rules: StopRules,
    options: dict,
    *,
    closed_form_start: bool,
    points_per_decade: int,
    record_kinks: bool,
    progress: bool,
    wall0: float,
    threads: int | None = None,
    bulk: bool = True,
) -> Trajectory:
    """The flow on general data: closed-form initial phase, then the compiled solver.

    ``bulk``: integrate the switching events of small neurons inside the solver's
    steps (:mod:`reluflow._engines.small_neurons`) instead of cutting every neuron's step
    at them (``False``: the reference's treatment, step for step).
    """
    n, m = data.n, net.m
    nthreads = blas_threads(m, n) if threads is None else int(threads)
    with threadpool_limits(limits=nthreads, user_api="blas"):
        return _run(
            data,
            net,
            rules,
            options,
            closed_form_start=closed_form_start,
            points_per_decade=points_per_decade,
            record_kinks=record_kinks,
            progress=progress,
            wall0=wall0,
            nthreads=nthreads,
            bulk=bulk,
        )


def _run(
    data: Dataset,
    net: Network,
    rules: StopRules,
    options: dict,
    *,
    closed_form_start: bool,
    points_per_decade: int,
    record_kinks: bool,
    progress: bool,
    wall0: float,
    nthreads: int,
    bulk: bool = True,
) -> Trajectory:
    n, m = data.n, net.m
    rtol, atol, max_steps = options["rtol"], options["atol"], options["max_steps"]
    t_end = rules.t_end
    field = Field(data)
    Kg = np.ascontiguousarray(field.K, dtype=float)
    Kp = data._pinv_gram if hasattr(data, "_pinv_gram") else np.linalg.pinv(Kg, hermitian=True)
    y = np.ascontiguousarray(data.y, dtype=float)
    rec = Recorder(data, net, points_per_decade, t0=1e-3 / rules.gamma_all)
    a0, u0 = net.a.astype(float), net.u.astype(float)
    rec.add(0.0, a0, u0, (u0 > 0).astype(float))
    kinks = KinkLog(n)
    stats = dict(steps=0, rejected=0, evaluations=0, kinks=0, kink_steps=0, sliding=0)
    t = 0.0
    a, u = a0.copy(), u0.copy()
    maskb = u > 0
    sliding = np.zeros((m, n), dtype=bool)
    phase = None
    if closed_form_start:
        phase = general_initial_phase(data, net, field, rec, eps=1e-2 * rtol, t_cap=t_end)
    if phase is not None:
        t = phase.t1
        a, u = phase.a.copy(), phase.u.copy()
        maskb, sliding = phase.mask.copy(), phase.sliding.copy()
        kinks.t.append(phase.kink_t)
        kinks.flat.append(phase.kink_flat)
        kinks.up.append(phase.kink_up)
        kinks.sliding.append(phase.kink_sliding)
        stats["kinks"] = int(phase.kink_t.size)
        stats["sliding"] = phase.sliding_entries
    stats["closed_form_t"] = t
    a = np.ascontiguousarray(a)
    u = np.ascontiguousarray(u)
    z = np.ascontiguousarray(u @ Kp)
    mask = maskb.astype(float)  # float mask shared with the reference helpers
    Ka = np.zeros((7, m))
    Ku = np.zeros((7, m, n))
    Kz = np.zeros((7, m, n))
    na, nu, nz = np.empty(m), np.empty((m, n)), np.empty((m, n))
    r_buf, G_buf = np.empty(n), np.empty((m, n))
    inv_cache: dict = {}
    slide_arrays = _sliding_arrays(Kg, sliding, inv_cache)

    def evaluate_here() -> float:
        scnt, sidx, sinv, alpha = slide_arrays
        return NB.evaluate(
            a, u, Ka[0], Ku[0], Kz[0], y, Kg, maskb, 1.0 / n, scnt, sidx, sinv, alpha, r_buf,
            G_buf, np.empty((m, max(1, sidx.shape[1]))),
        )  # fmt: skip

    ss = evaluate_here()
    stats["evaluations"] += 1
    f0 = np.concatenate([Ka[0], Ku[0].ravel()])
    h = _initial_step(np.concatenate([a, u.ravel()]), f0, m, n, rtol, atol, rules.gamma_all)
    fs = np.zeros(NB.N_FS)
    fs[NB.F_T], fs[NB.F_H], fs[NB.F_NEXT] = t, h, rec.next_t
    fs[NB.F_DRIFT] = rec.drift
    fs[NB.F_LOSS] = ss / (2 * n)
    fs[NB.F_MARK_T] = -1.0
    ist = np.zeros(NB.N_IST, dtype=np.int64)
    cap = 64 + 8 * points_per_decade
    bufs = (
        np.empty(cap),
        np.empty(cap),
        np.empty((cap, m)),
        np.empty((cap, m)),
        np.empty((cap, m), dtype=np.int64),
    )
    flips = np.empty(m * n, dtype=np.int64)
    band = np.empty(m)  # the kinks' detection band of the kernel's last step
    kappa = E.gram_row_bound(Kg)  # its Gram bound (events.detection_band)
    A, B, Ev, P = (np.ascontiguousarray(x, dtype=float) for x in (_A, _B, _E, _P))
    grid_ratio = 10.0 ** (1.0 / points_per_decade)
    w_perp_sq = np.ascontiguousarray(net.w_perp_sq, dtype=float)
    balance0 = np.ascontiguousarray(net.balance(data), dtype=float)
    stuck = 0
    status = message = ""
    # kinks in bulk: neurons whose outputs stay below eps of the labels (as the phase)
    ymax = float(np.max(np.abs(y))) if n else 1.0
    small_bound = 1e-2 * rtol * np.maximum(np.abs(y), 1e-3 * ymax)
    integ = SN.NeuronIntegrator(field, Kg, rtol, atol) if bulk else None
    small_caches: dict = {}
    bar = tqdm(total=None, disable=not progress, unit=" steps", desc="flow", leave=False)
    code = NB.RUNNING
    try:
        while True:
            scnt, sidx, sinv, alpha = slide_arrays
            before = stats["steps"]
            code, *bufs = NB.run(
                A, B, Ev, P, y, Kg, w_perp_sq, balance0,
                a, u, z, Ka, Ku, Kz, na, nu, nz, maskb, sliding, scnt, sidx, sinv, alpha,
                fs, ist, flips, band, kappa, t_end, max_steps - stats["steps"], rtol, atol,
                rules.loss_tol, rules.stall_rate, rules.rate_unit, grid_ratio, *bufs,
            )  # fmt: skip
            stats["steps"] += int(ist[NB.I_STEPS])
            stats["rejected"] += int(ist[NB.I_REJ])
            stats["evaluations"] += int(ist[NB.I_EVALS])
            ist[NB.I_STEPS] = ist[NB.I_REJ] = ist[NB.I_EVALS] = 0
            bar.update(stats["steps"] - before)
            if code != NB.EVENT:
                break
            # ---- an accepted step holding a switching event: finish it as the reference
            t, h = float(fs[NB.F_T]), float(fs[NB.F_H])
            if integ is not None:
                done = _bulk_step(
                    integ, small_caches, small_bound, t, h, P, B, y, Kp, a, u, z, Ka, Ku, Kz,
                    na, nu, maskb, sliding, slide_arrays, kinks, stats, fs[NB.F_NEXT] <= t + h,
                    band,
                )  # fmt: skip
                if done:
                    mask = maskb.astype(float)
                    slide_arrays = _sliding_arrays(Kg, sliding, inv_cache, slide_arrays)
                    ss = evaluate_here()
                    stats["evaluations"] += 1
                    loss = ss / (2 * n)
                    ratio = float(fs[NB.F_RATIO])
                    t = t + h
                    h = h * min(5.0, max(0.2, 0.9 * max(ratio, 1e-10) ** -0.2))
                    stuck = 0
                    fs[NB.F_T], fs[NB.F_H], fs[NB.F_LOSS] = t, h, loss
                    if loss <= rules.loss_tol:
                        status = "loss_tol"
                        message = f"loss {loss:.3e} <= loss_tol = {rules.loss_tol:.3e}"
                        code = NB.LOSS_TOL
                        break
                    if NB.stalled(
                        Ka[0], Ku[0], Kz[0], a, u, fs, t, loss, rules.stall_rate,
                        rules.loss_tol, rules.rate_unit,
                    ):  # fmt: skip
                        status, message = "stalled", STALLED_MESSAGE
                        code = NB.STALLED
                        break
                    continue
            theta_star = float(fs[NB.F_THETA])
            flip = flips[: int(ist[NB.I_NFLIP])].copy()
            exit_slide = False
            alpha_exit = None
            if ist[NB.I_EXIT]:
                th = NB.locate_exit_poly(
                    P, h, theta_star, a, u, Ka, Ku, y, Kg, maskb, *slide_arrays
                )
                if th >= 0:
                    alpha_exit = slide_arrays[3].copy()  # the search's fractions at th
                    if th < theta_star:
                        flip = flip[:0]
                    theta_star, exit_slide = th, True
            released = None
            if ist[NB.I_EXIT]:
                th_a, rel = E.locate_sign_change(a, Ka.T @ P, h, theta_star, scnt > 0)
                if th_a < theta_star:
                    theta_star, flip, exit_slide, released = th_a, flip[:0], False, rel
                elif th_a == theta_star:
                    released = rel
            event = flip.size > 0 or exit_slide or released is not None
            t_next = t + theta_star * h
            bufs = list(bufs)
            *bufs, npts, last_pt = NB.record_points(
                P, t, min(t_next, t_end), h, a, u, z, Ka, Ku, Kz, maskb, y, w_perp_sq,
                balance0, fs, ist, grid_ratio, *bufs,
            )  # fmt: skip
            stats["steps"] += 1
            ratio = float(fs[NB.F_RATIO])
            h_prop = h * min(5.0, max(0.2, 0.9 * max(ratio, 1e-10) ** -0.2))
            if event:
                stats["kink_steps"] += 1
                stuck = stuck + 1 if theta_star * h <= 1e-13 * max(t, 1.0) else 0
                NB.dense(P, theta_star, h, a.copy(), u.copy(), z.copy(), Ka, Ku, Kz, a, u, z)
                t = t_next
                u_before = u.ravel().copy()
                yflat = np.concatenate([a, u.ravel()])
                u.ravel()[flip] = 0.0
                scnt, sidx, sinv, alpha = slide_arrays
                if exit_slide:  # the exit search left the fractions at the event
                    NB.residual(a, u, y, maskb, r_buf)
                    al_left = alpha_exit
                else:
                    NB.sliding_alpha(
                        a, u, y, Kg, maskb, 1.0 / n, scnt, sidx, sinv, alpha, r_buf,
                        np.empty((m, max(1, sidx.shape[1]))),
                    )  # fmt: skip
                    al_left = alpha
                in_set = np.arange(al_left.shape[1]) < scnt[:, None]
                left = (E.exited(al_left) & in_set).any(axis=1)
                if released is not None:
                    left |= released
                try:
                    switched, up, slid = E.resolve(
                        field, r_buf.copy(), left, yflat, m, n, mask, sliding, flip
                    )
                except FloatingPointError as exc:
                    status, message = (
                        "failed",
                        f"could not resolve a sliding mode at t = {t:.6g}: {exc}",
                    )
                    break
                # coordinates set to exactly 0: keep z = K⁺ u
                moved = np.flatnonzero(yflat[m:] != u_before)
                if moved.size:
                    jj, ii = np.divmod(moved, n)
                    delta = yflat[m:][moved] - u_before[moved]
                    np.add.at(z, jj, delta[:, None] * Kp[ii])
                u[...] = yflat[m:].reshape(m, n)
                maskb[...] = mask > 0
                stats["sliding"] += int(slid.sum())
                stats["kinks"] += int(switched.size)
                kinks.add(t, switched, up, slid)
                slide_arrays = _sliding_arrays(
                    Kg, sliding, inv_cache, slide_arrays, np.unique(switched // n)
                )
                ss = evaluate_here()
                stats["evaluations"] += 1
                loss = ss / (2 * n)
                if stuck > MAX_STUCK:
                    status, message = "failed", stuck_message(t, stuck)
                    break
                last_row = bufs[0][int(ist[NB.I_NREC]) - 1] if ist[NB.I_NREC] else rec.t[-1]
                if record_kinks and (npts == 0 or last_pt < t) and last_row < t:
                    bufs = NB.add_row(t, a, u, z, maskb, y, w_perp_sq, balance0, fs, ist, *bufs)
                h = max(h_prop, h * (1.0 - theta_star)) if theta_star < 1 else h_prop
            else:
                stuck = 0
                z += h * np.tensordot(_B, Kz[:6], axes=1)
                a[...] = na
                u[...] = nu
                Ka[0], Ku[0], Kz[0] = Ka[6], Ku[6], Kz[6]
                t = t + h
                h = h_prop
                loss = float(fs[NB.F_LOSS6])
            fs[NB.F_T], fs[NB.F_H], fs[NB.F_LOSS] = t, h, loss
            if progress and stats["steps"] % 50 == 0:
                bar.set_postfix(
                    tau=f"{t / log_inv_scale(net):.3g}" if net.scale < 1 else "",
                    loss=f"{loss:.3e}",
                )
            if loss <= rules.loss_tol:
                status = "loss_tol"
                message = f"loss {loss:.3e} <= loss_tol = {rules.loss_tol:.3e}"
                code = NB.LOSS_TOL
                break
            if NB.stalled(
                Ka[0], Ku[0], Kz[0], a, u, fs, t, loss, rules.stall_rate, rules.loss_tol,
                rules.rate_unit,
            ):  # fmt: skip
                status, message = "stalled", STALLED_MESSAGE
                code = NB.STALLED
                break
    finally:
        bar.close()

    t = float(fs[NB.F_T])
    if not status:
        status, message = _outcome(code, t, fs, rules, rtol, max_steps, net)
    nrec = int(ist[NB.I_NREC])
    if nrec == 0 or bufs[0][nrec - 1] < t:
        bufs = NB.add_row(t, a, u, z, maskb, y, w_perp_sq, balance0, fs, ist, *bufs)
        nrec = int(ist[NB.I_NREC])
    head = rec.samples()
    keys = ("t", "loss", "a_abs", "w_norm", "n_active")  # the kernel's buffers, in order
    samples = {
        key: np.concatenate([head[key], b[:nrec]]) for key, b in zip(keys, bufs, strict=True)
    }
    # float64 engine: log|a_j| of its rows is the log of what it stores
    with np.errstate(divide="ignore"):
        samples["log_abs_a"] = np.concatenate([head["log_abs_a"], np.log(bufs[2][:nrec])])
    drift = max(rec.drift, float(fs[NB.F_DRIFT]))
    return make_trajectory(
        "flow",
        data=data,
        net=net,
        final=net.with_params(a.copy(), u.copy()),
        samples=samples,
        status=status,
        message=message,
        drift=drift,
        stats=SolverStats(**stats),
        kinks=kinks.arrays(),
        wall0=wall0,
        provenance=run_provenance(
            "flow", data, net, **options, engine="numba", blas_threads=nthreads
        ),
    )


def _bulk_step(
    integ, caches, bound, t, h, P, B, y, Kp, a, u, z, Ka, Ku, Kz, na, nu, maskb, sliding,
    slide_arrays, kinks, stats, records, band,
) -> bool:  # fmt: skip
    """Accept an event step whose events all belong to small neurons (docs/general-data.md §4).

    Every neuron without an event takes the step's end state; each small neuron with
    an event is integrated again over the step alone (:mod:`reluflow._engines.small_neurons`).
    Returns False, touching nothing, when some event belongs to a large neuron, a small
    neuron's sub-steps fail, or the recorder has a row inside the step (``records``:
    the row would need the small neurons' sub-step states; the caller then cuts the
    step as the reference). ``band``: the kernel's detection band of the step
    (:func:`reluflow._engines.events.detection_band`).
    """
    if records:
        return False
    small = SN.small_set(a, u, na, nu, bound)
    if not small.any():
        return False
    scnt, _, _, alpha = slide_arrays
    ev = SN.event_neurons(u, nu, Ku[0], maskb, sliding, alpha, scnt, h, band)
    if not ev.any() or (ev & ~small).any():
        return False
    res = SN.StepResidual(P, h, a.copy(), u.copy(), Ka.copy(), Ku.copy(), maskb.copy(), y)
    out, events = [], []
    for j in np.flatnonzero(ev):
        aj, uj = a[j : j + 1].copy(), u[j : j + 1].copy()
        mj, sj = maskb[j : j + 1].copy(), sliding[j : j + 1].copy()
        try:
            integ.integrate(j, aj, uj, mj, sj, res, caches.setdefault(j, {}), events)
        except FloatingPointError:
            return False
        out.append((j, aj[0], uj[0], mj[0], sj[0]))
    z += h * np.tensordot(B, Kz[:6], axes=1)
    a[...] = na
    u[...] = nu
    for j, aj, uj, mj, sj in out:
        a[j], u[j], maskb[j], sliding[j] = aj, uj, mj, sj
        z[j] = uj @ Kp
    for th, flat, up, slid in sorted(events, key=lambda e: e[0]):
        kinks.add(t + th * h, flat, up, slid)
        stats["kinks"] += int(flat.size)
        stats["sliding"] += int(slid.sum())
    stats["steps"] += 1
    return True


def _outcome(code, t, fs, rules, rtol, max_steps, net) -> tuple[str, str]:
    if code == NB.T_MAX:
        return "t_max", f"reached the requested time t = {t:.6g}"
    if code == NB.MAX_STEPS:
        return "max_steps", max_steps_message(max_steps, t, net)
    if code == NB.LOSS_TOL:
        return "loss_tol", f"loss {fs[NB.F_LOSS]:.3e} <= loss_tol = {rules.loss_tol:.3e}"
    if code == NB.STALLED:
        return "stalled", STALLED_MESSAGE
    if code == NB.NONFINITE:
        return (
            "failed",
            f"the state became non-finite at t = {t:.6g}: the flow diverged or overflowed",
        )
    return "failed", f"step size underflow at t = {t:.6g}: the solver cannot meet rtol = {rtol:g}"


def _sliding_arrays(K: np.ndarray, sliding: np.ndarray, cache: dict, old=None, rows=None):
    """Padded per-neuron sliding sets and ``K_SS⁻¹`` (as ``Field._hold``) for the kernel.

    ``cache`` maps a neuron to its last sliding set and inverse; only the rows of
    neurons whose set changed are rewritten in ``old`` (the previous arrays), which
    are reallocated when the largest set outgrows them. ``rows``: the only neurons
    whose sets may have changed since ``old`` (None: any).
    """
    m = sliding.shape[0]
    cnt = sliding.sum(axis=1).astype(np.int64)
    smax = max(1, int(cnt.max(initial=0)))
    if old is not None and old[1].shape[1] >= smax:
        _, idx, inv, alpha = old
        fresh = False
    else:
        smax = max(smax, 2 * old[1].shape[1]) if old is not None else smax
        idx = np.zeros((m, smax), dtype=np.int64)
        inv = np.zeros((m, smax, smax))
        alpha = np.zeros((m, smax))
        fresh = True
    for j in range(m) if rows is None or fresh else rows:
        if cnt[j] == 0:
            if cache.pop(j, None) is not None:
                inv[j] = 0.0
            continue
        S = np.flatnonzero(sliding[j])
        key = S.tobytes()
        hit = cache.get(j)
        if hit is None or hit[0] != key:
            hit = _updated_inverse(K, S, hit)
            cache[j] = hit
        elif not fresh:
            continue
        idx[j, : S.size] = S
        inv[j, : S.size, : S.size] = hit[1]
    return cnt, idx, inv, alpha


# an inverse K_SS⁻¹ is updated at most this many times (one index in or out each) before
# it is computed afresh, so that rounding does not accumulate
_MAX_UPDATES = 32
# below this size a fresh LAPACK inverse costs less than the updates' NumPy overhead
_UPDATE_FROM = 48


def _updated_inverse(K: np.ndarray, S: np.ndarray, hit) -> tuple:
    """``(key, K_SS⁻¹, S, updates)`` for the sorted index set ``S``.

    From the previous entry ``hit`` of the same neuron when ``S`` differs from its set
    by a few indices: removing index ``p`` is the Schur complement of its pivot in the
    inverse (``B − b bᵀ / β``), adding index ``i`` the bordered inverse with
    ``v = K_SS⁻¹ K_Si``, ``s = K_ii − K_iS v``; O(|S|²) each instead of O(|S|³).
    Computed afresh after ``_MAX_UPDATES`` updates, for large changes, for small sets
    (``|S| < _UPDATE_FROM``), or when a pivot ``s`` is not clearly positive (``K_SS``
    near singular).
    """
    key = S.tobytes()
    if hit is not None and hit[3] < _MAX_UPDATES and S.size >= _UPDATE_FROM:
        _, Kinv, S0, count = hit
        gone = np.setdiff1d(S0, S, assume_unique=True)
        new = np.setdiff1d(S, S0, assume_unique=True)
        if gone.size + new.size <= 4:
            cur = S0
            for i in gone:
                p = int(np.searchsorted(cur, i))
                keep = np.arange(cur.size) != p
                b = Kinv[keep, p]
                Kinv = Kinv[np.ix_(keep, keep)] - np.outer(b, b) / Kinv[p, p]
                cur = cur[keep]
            ok = True
            for i in new:
                k = K[cur, i]
                v = Kinv @ k
                sch = K[i, i] - k @ v
                if not sch > 1e-8 * K[i, i]:
                    ok = False
                    break
                p = int(np.searchsorted(cur, i))
                c = cur.size
                out = np.empty((c + 1, c + 1))
                rest = np.r_[0:p, p + 1 : c + 1]
                out[np.ix_(rest, rest)] = Kinv + np.outer(v, v) / sch
                out[rest, p] = out[p, rest] = -v / sch
                out[p, p] = 1.0 / sch
                Kinv = out
                cur = np.insert(cur, p, i)
            if ok:
                return key, Kinv, S, count + gone.size + new.size
    return key, np.linalg.inv(K[S[:, None], S]), S, 0


__all__ = ["blas_threads", "gradient_flow_general"]

"""Compiled gradient-flow kernel for general (non-orthogonal) data.

The same algorithm as the reference loop of :mod:`reluflow.flow` (Dormand–Prince
5(4) with the ``scipy.integrate.RK45`` tableau, per-neuron error control, the
activity mask and the sliding set frozen over a step, kinks located on the
step's dense output by the same grid-and-bisection rule, the same step-size
controller, stopping rules and recording) on

    r = Σ_j a_j σ(u_j) − y,   da_j/dt = −(1/n) Σ_i r_i σ(u_ji),
    du_j/dt = −a_j K g_j,     g_j = (1/n) r ∘ 1[u_j > 0],

the ``m × n`` by ``n × n`` product going to BLAS (``np.dot``). A neuron
with sliding coordinates ``Σ`` gets Filippov's correction ``du_j −= q K_Σ·``,
``q = K_ΣΣ⁻¹ du_jΣ`` (its inverse is supplied per neuron by the caller), as
:meth:`reluflow._engines.field.Field.velocity`; ``du_jΣ`` comes first, from the rows
``K_Σ·`` alone, and the correction rides in the one product:
``du_j = K (−a_j g_j − q on Σ)``.

Besides ``(a, u)`` the kernel carries ``z_j = K⁺ u_j`` with ``dz_j/dt = −a_j g_j``
(minus ``q`` on ``Σ``): Runge–Kutta methods preserve linear invariants, so ``z``
stays ``K⁺ u`` to rounding and gives ``‖w_j‖² = ‖w_j^⊥‖² + u_j · z_j`` and the
stall rule's ``Σ_j du_j K⁺ du_j`` in O(m n) instead of O(m n²).

The kernel runs steps until a stopping rule, or until an accepted step holds a
switching event (a kink located inside it, or a sliding fraction outside
[0, 1] at its end); it then returns ``EVENT`` with the step's stages, its end
state, the located ``θ*`` and the coordinates to flip, and the caller resolves
the event (:func:`reluflow._engines.events.switch`, the box complementarity problem)
in Python before resuming. The closed-form initial phase
(:mod:`reluflow._engines.general_phase`) takes the bulk of the kinks; after it, on Gaussian
data, kinks and sliding exits of large neurons (10–70 % of the outputs) still end most
steps (docs/general-data.md §4).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .events import EVENT_RTOL
from .field import SLIDE_MARGIN

RUNNING, T_MAX, MAX_STEPS, LOSS_TOL, STALLED, NONFINITE, UNDERFLOW, EVENT = range(8)

# float state slots
F_T, F_H, F_NEXT, F_DRIFT, F_LOSS, F_MARK_T, F_MARK_LOSS, F_THETA, F_RATIO, F_LOSS6 = range(10)
N_FS = 10
# integer state slots
I_STEPS, I_REJ, I_EVALS, I_NREC, I_NFLIP, I_EXIT = range(6)
N_IST = 6


@njit(cache=True)
def _matvec(M, v, c, out):
    """``out[:c] = M[:c, :c] v[:c]``, each sum in index order (four rows at a time)."""
    p = 0
    while p + 4 <= c:
        m0, m1, m2, m3 = M[p], M[p + 1], M[p + 2], M[p + 3]
        s0 = s1 = s2 = s3 = 0.0
        for s in range(c):
            vs = v[s]
            s0 += m0[s] * vs
            s1 += m1[s] * vs
            s2 += m2[s] * vs
            s3 += m3[s] * vs
        out[p], out[p + 1], out[p + 2], out[p + 3] = s0, s1, s2, s3
        p += 4
    while p < c:
        mp = M[p]
        acc = 0.0
        for s in range(c):
            acc += mp[s] * v[s]
        out[p] = acc
        p += 1


@njit(cache=True)
def residual(a, u, y, mask, r):
    """``r = Σ_j a_j u_j ∘ mask_j − y`` (the network's output minus the labels), summed
    over neurons in index order."""
    m, n = u.shape
    for i in range(n):
        r[i] = -y[i]
    for j in range(m):
        aj = a[j]
        for i in range(n):
            if mask[j, i]:
                r[i] += aj * u[j, i]


@njit(cache=True)
def evaluate(a, u, ka, ku, kz, y, Kg, mask, inv_n, scnt, sidx, sinv, alpha, r, G, Q):
    """Field at ``(a, u)`` into ``ka, ku, kz``; returns ``Σ r_i²`` (``r`` left in ``r``).

    ``G`` (m × n) and ``Q`` (m × max |Σ|, the hold multipliers) are scratch.

    Sets ``alpha[j, :scnt[j]]`` (the sliding fractions of neuron ``j``, inf where
    undefined) for every neuron with sliding coordinates.
    """
    m, n = u.shape
    residual(a, u, y, mask, r)
    ss = 0.0
    for i in range(n):
        ss += r[i] * r[i]
    for j in range(m):
        acc = 0.0
        for i in range(n):
            if mask[j, i]:
                w = r[i] * inv_n
                acc += u[j, i] * w
                G[j, i] = w
            else:
                G[j, i] = 0.0
        ka[j] = -acc
    # Filippov hold of each sliding set Σ first (q = K_ΣΣ⁻¹ du_Σ from the rows K_Σ·),
    # then one product: du_j = K (−a_j g_j − q_j on Σ), dz_j = −a_j g_j − q_j on Σ
    holds(a, r, Kg, mask, inv_n, scnt, sidx, sinv, alpha, Q)
    for j in range(m):
        naj = -a[j]
        for i in range(n):
            kz[j, i] = naj * G[j, i]
        for p in range(scnt[j]):
            kz[j, sidx[j, p]] -= Q[j, p]
    np.dot(kz, Kg, ku)
    for j in range(m):
        for p in range(scnt[j]):
            ku[j, sidx[j, p]] = 0.0  # held exactly at 0 (removes rounding)
    return ss


@njit(cache=True)
def _row(t, a, u, z, mask, y, w_perp_sq, balance0, drift, bt, bl, ba, bw, bc, nrec, r, wsq):
    """One trajectory row at ``nrec`` (as ``Recorder.add``); returns the new drift."""
    m, n = u.shape
    for i in range(n):
        r[i] = -y[i]
    big = 0.0
    for j in range(m):
        aj = a[j]
        q = 0.0
        cnt = 0
        for i in range(n):
            q += u[j, i] * z[j, i]
            if mask[j, i]:
                r[i] += aj * u[j, i]
                cnt += 1
        ws = w_perp_sq[j] + q
        wsq[j] = ws
        ba[nrec, j] = abs(aj)
        bw[nrec, j] = np.sqrt(max(ws, 0.0))
        bc[nrec, j] = cnt
        big = max(big, aj * aj + ws)
    if big > 0:
        dev = 0.0
        for j in range(m):
            dev = max(dev, abs(a[j] * a[j] - wsq[j] - balance0[j]))
        drift = max(drift, dev / big)
    ss = 0.0
    for i in range(n):
        ss += r[i] * r[i]
    bt[nrec] = t
    bl[nrec] = ss / (2 * n)
    return drift


@njit(cache=True)
def grow_rows(bt, bl, ba, bw, bc, nrec, extra):
    """Buffers with room for ``nrec + extra`` rows (reallocated when full)."""
    if nrec + extra <= bt.shape[0]:
        return bt, bl, ba, bw, bc
    cap = max(2 * bt.shape[0] + 16, nrec + extra)
    m = ba.shape[1]
    t2 = np.empty(cap)
    l2 = np.empty(cap)
    a2 = np.empty((cap, m))
    w2 = np.empty((cap, m))
    c2 = np.empty((cap, m), dtype=np.int64)
    t2[:nrec] = bt[:nrec]
    l2[:nrec] = bl[:nrec]
    a2[:nrec] = ba[:nrec]
    w2[:nrec] = bw[:nrec]
    c2[:nrec] = bc[:nrec]
    return t2, l2, a2, w2, c2


@njit(cache=True)
def dense(P, th, h, a, u, z, Ka, Ku, Kz, oa, ou, oz):
    """The step's dense output ``y0 + h Σ_s b_s K_s`` at ``θ`` (``b_s = Σ_q P[s, q] θ^(q+1)``)."""
    b = np.empty(7)
    p1 = th
    p2 = th * th
    p3 = p2 * th
    p4 = p2 * p2
    for s in range(7):
        b[s] = h * (P[s, 0] * p1 + P[s, 1] * p2 + P[s, 2] * p3 + P[s, 3] * p4)
    m, n = u.shape
    for j in range(m):
        acc = 0.0
        for s in range(7):
            acc += b[s] * Ka[s, j]
        oa[j] = a[j] + acc
        for i in range(n):
            au = 0.0
            az = 0.0
            for s in range(7):
                au += b[s] * Ku[s, j, i]
                az += b[s] * Kz[s, j, i]
            ou[j, i] = u[j, i] + au
            oz[j, i] = z[j, i] + az


@njit(cache=True)
def record_points(
    P, t, t_hi, h, a, u, z, Ka, Ku, Kz, mask, y, w_perp_sq, balance0, fs, ist, grid_ratio,
    bt, bl, ba, bw, bc,
):
    """Rows at the grid points in ``(t, t_hi]`` (dense output); returns (buffers, count, last)."""
    m, n = u.shape
    ga = np.empty(m)
    gu = np.empty((m, n))
    gz = np.empty((m, n))
    r = np.empty(n)
    wsq = np.empty(m)
    npts = 0
    last = 0.0
    next_t = fs[F_NEXT]
    while next_t <= t_hi:
        if next_t > t:
            dense(P, (next_t - t) / h, h, a, u, z, Ka, Ku, Kz, ga, gu, gz)
            nrec = ist[I_NREC]
            bt, bl, ba, bw, bc = grow_rows(bt, bl, ba, bw, bc, nrec, 1)
            fs[F_DRIFT] = _row(
                next_t, ga, gu, gz, mask, y, w_perp_sq, balance0, fs[F_DRIFT],
                bt, bl, ba, bw, bc, nrec, r, wsq,
            )
            ist[I_NREC] = nrec + 1
            npts += 1
            last = next_t
        next_t *= grid_ratio
    fs[F_NEXT] = next_t
    return bt, bl, ba, bw, bc, npts, last


@njit(cache=True)
def add_row(t, a, u, z, mask, y, w_perp_sq, balance0, fs, ist, bt, bl, ba, bw, bc):
    """Append one row at ``t`` (kink events, the end); returns the buffers."""
    m, n = u.shape
    nrec = ist[I_NREC]
    bt, bl, ba, bw, bc = grow_rows(bt, bl, ba, bw, bc, nrec, 1)
    fs[F_DRIFT] = _row(
        t, a, u, z, mask, y, w_perp_sq, balance0, fs[F_DRIFT], bt, bl, ba, bw, bc, nrec,
        np.empty(n), np.empty(m),
    )
    ist[I_NREC] = nrec + 1
    return bt, bl, ba, bw, bc


@njit(cache=True)
def stalled(ka, ku, kz, a, u, fs, t, loss, stall_rate, loss_tol, rate_unit):
    """The stall rule of ``reluflow._engines.dynamics.StallWatch`` (mark kept in ``fs``)."""
    m, n = u.shape
    for j in range(m):
        size = abs(a[j])
        speed = abs(ka[j])
        for i in range(n):
            size = max(size, abs(u[j, i]))
            speed = max(speed, abs(ku[j, i]))
        if size > 0 and not (speed <= stall_rate * size):
            fs[F_MARK_T] = -1.0
            return False
    sp = 0.0
    for j in range(m):
        sp += ka[j] * ka[j]
        for i in range(n):
            sp += ku[j, i] * kz[j, i]
    if sp <= loss_tol * rate_unit:
        return True
    if fs[F_MARK_T] < 0:
        fs[F_MARK_T] = t
        fs[F_MARK_LOSS] = loss
        return False
    return t > fs[F_MARK_T] and t >= 2 * fs[F_MARK_T] and fs[F_MARK_LOSS] - loss <= loss_tol


@njit(cache=True)
def _poly(u0, h, Q, c, th):
    th2 = th * th
    return u0 + h * (Q[c, 0] * th + Q[c, 1] * th2 + Q[c, 2] * (th2 * th) + Q[c, 3] * (th2 * th2))


@njit(cache=True)
def locate(cand, nc, sgn, u0s, Q, h, sc_old, n, rtol, atol, flips, band):
    """``reluflow._engines.events.locate_kinks`` on the candidates: returns ``(θ*, number flipped)``.

    Signed values ``d = sgn (u0 + h Σ_q Q_q θ^(q+1))`` (> 0 on the right side of 0) are
    evaluated on a grid of 16 points; a candidate is a hit if ``d <= −b`` at one of them
    (``b = band[j]``, the detection band of its neuron,
    ``reluflow._engines.events.detection_band``), and its crossing is where ``d + depth``
    reaches 0, ``depth = b`` if it starts at 0 or inside the band (``sgn u0 <= 0``), else 0
    (its zero). Every hit is bisected the same number of
    times (that of the widest bracket, until below 1e-15: brackets are dyadic,
    so this is the reference's joint bisection), θ* is the smallest crossing and
    the hits crossing there or within ``1e-3 (atol + rtol · size)`` of their crossing
    are flipped.
    """
    lo = np.zeros(nc)
    hi = np.full(nc, np.inf)
    depth = np.zeros(nc)
    for c in range(nc):
        prev = 0.0
        b = band[cand[c] // n]
        if sgn[c] * u0s[c] <= 0:
            depth[c] = b
        past = False
        for gi in range(1, 17):
            g = gi / 16.0
            d = sgn[c] * _poly(u0s[c], h, Q, c, g)
            if hi[c] == np.inf:
                if d + depth[c] <= 0:
                    hi[c] = g
                    lo[c] = prev
                else:
                    prev = g
            if d + b <= 0:
                past = True
                break
        if not past:
            hi[c] = np.inf
        if u0s[c] == 0:
            lo[c] = 0.0
    W = 0.0
    nh = 0
    for c in range(nc):
        if hi[c] < np.inf:
            nh += 1
            W = max(W, hi[c] - lo[c])
    if nh == 0:
        return 1.0, 0
    niter = 0
    for _ in range(52):
        niter += 1
        W *= 0.5
        if W < 1e-15:
            break
    th_star = np.inf
    for c in range(nc):
        if hi[c] < np.inf:
            lc = lo[c]
            hc = hi[c]
            for _ in range(niter):
                mid = 0.5 * (lc + hc)
                if sgn[c] * _poly(u0s[c], h, Q, c, mid) + depth[c] > 0:
                    lc = mid
                else:
                    hc = mid
            hi[c] = hc
            th_star = min(th_star, hc)
    nf = 0
    for c in range(nc):
        if hi[c] < np.inf:
            v = sgn[c] * _poly(u0s[c], h, Q, c, th_star) + depth[c]
            if hi[c] <= th_star or v <= 1e-3 * (atol + rtol * sc_old[cand[c] // n]):
                flips[nf] = cand[c]
                nf += 1
    return th_star, nf


@njit(cache=True)
def _stage_sum(Ku, coef, s, j, out):
    """``out[i] = Σ_{q<s} coef_q Ku[q, j, i]``, each sum in the order of ``q`` from 0."""
    n = out.shape[0]
    k0 = Ku[0, j]
    c0 = coef[0]
    for i in range(n):
        out[i] = 0.0 + c0 * k0[i]
    for q in range(1, s):
        kq = Ku[q, j]
        cq = coef[q]
        for i in range(n):
            out[i] += cq * kq[i]


@njit(cache=True)
def run(
    A, B, E, P, y, Kg, w_perp_sq, balance0,
    a, u, z, Ka, Ku, Kz, na, nu, nz, mask, sliding, scnt, sidx, sinv, alpha,
    fs, ist, flips, band, kappa, t_end, max_steps, rtol, atol, loss_tol, stall_rate, rate_unit,
    grid_ratio, bt, bl, ba, bw, bc,
):
    """Integrate until a stopping rule or an event; see the module docstring.

    On entry ``(a, u, z)`` is the state, ``Ka[0], Ku[0], Kz[0]`` the field there.
    On ``EVENT``: ``Ka..Kz`` hold the accepted step's 7 stages, ``(na, nu, nz)``
    its end state, ``fs[F_THETA]`` the located θ*, ``flips[:ist[I_NFLIP]]`` the
    flat indices to flip, ``ist[I_EXIT]`` whether a sliding fraction is outside
    [0, 1] at the end, ``fs[F_RATIO]`` the error ratio, ``fs[F_LOSS6]`` the loss at
    the end, ``band`` the kinks' detection band of each neuron
    (:func:`reluflow._engines.events.detection_band`, ``kappa`` its Gram bound); the step
    is neither counted nor recorded. Returns ``(code, buffers)``.
    """
    m, n = u.shape
    inv_n = 1.0 / n
    r = np.empty(n)
    G = np.empty((m, n))
    qh = np.empty((m, max(1, sidx.shape[1])))  # hold multipliers (evaluate's scratch)
    sa = np.empty(m)
    su = np.empty((m, n))
    sc_old = np.empty(m)
    ncap = m * n
    cand = np.empty(ncap, dtype=np.int64)
    sgn = np.empty(ncap)
    u0s = np.empty(ncap)
    Q = np.empty((ncap, 4))
    coef = np.empty(7)
    accv = np.empty(n)
    any_sliding = False
    for j in range(m):
        if scnt[j] > 0:
            any_sliding = True
    t = fs[F_T]
    h = fs[F_H]
    code = RUNNING
    while True:
        if t >= t_end:
            code = T_MAX
            break
        if ist[I_STEPS] >= max_steps:
            code = MAX_STEPS
            break
        h = min(h, t_end - t)
        # ---- one Dormand-Prince trial step with mask and sliding set frozen
        for s in range(1, 7):
            for q in range(s):
                coef[q] = A[s, q] if s < 6 else B[q]
            for j in range(m):
                acc = 0.0
                for q in range(s):
                    acc += coef[q] * Ka[q, j]
                sa[j] = a[j] + h * acc
                # Σ_q coef_q Ku[q, j, i] summed in the order of q, entry by entry
                _stage_sum(Ku, coef, s, j, accv)
                uj = u[j]
                suj = su[j]
                for i in range(n):
                    suj[i] = uj[i] + h * accv[i]
            if s == 6:
                for j in range(m):
                    na[j] = sa[j]
                    for i in range(n):
                        nu[j, i] = su[j, i]
            ss = evaluate(sa, su, Ka[s], Ku[s], Kz[s], y, Kg, mask, inv_n, scnt, sidx, sinv,
                          alpha, r, G, qh)
        loss6 = ss / (2 * n)
        # the stage-6 evaluation was at y_new = y0 + h Σ B K (B[6] = 0): K[6]
        ist[I_EVALS] += 6
        # ---- error norm (as flow._error_ratio)
        ratio = 0.0
        for j in range(m):
            s0 = abs(a[j])
            s1 = abs(na[j])
            e = 0.0
            acc = 0.0
            for q in range(7):
                acc += E[q] * Ka[q, j]
            e = abs(h * acc)
            _stage_sum(Ku, E, 7, j, accv)
            for i in range(n):
                s0 = max(s0, abs(u[j, i]))
                s1 = max(s1, abs(nu[j, i]))
                e = max(e, abs(h * accv[i]))
            sc_old[j] = s0
            sc = max(atol + rtol * max(s0, s1), 1e-300)
            v = e / sc
            if v != v:
                ratio = np.nan
            elif ratio == ratio:
                ratio = max(ratio, v)
        if not np.isfinite(ratio):
            code = NONFINITE
            break
        if ratio > 1.0:
            ist[I_REJ] += 1
            h *= max(0.2, 0.9 * ratio**-0.2)
            if h < 1e-14 * max(t, 1.0):
                code = UNDERFLOW
                break
            continue
        # ---- accepted: kink candidates (events.crossing_candidates: past 0 by more than
        # the detection band, or active and within half a step's motion of 0); the band is
        # events.detection_band, from the residual at the step's end (left in r)
        rmax = 0.0
        for i in range(n):
            rmax = max(rmax, abs(r[i]))
        for j in range(m):
            band[j] = SLIDE_MARGIN * h * kappa * abs(na[j]) * rmax
        nc = 0
        for j in range(m):
            bd = band[j]
            for i in range(n):
                un = nu[j, i]
                uo = u[j, i]
                act = mask[j, i]
                crossed = (act and un <= -bd) or (not act and not sliding[j, i] and un > bd)
                near = act and un > -bd and min(uo, un) < 0.5 * h * abs(Ku[0, j, i])
                if crossed or near:
                    cand[nc] = j * n + i
                    sgn[nc] = 1.0 if act else -1.0
                    u0s[nc] = uo
                    for q in range(4):
                        acc = 0.0
                        for s in range(7):
                            acc += Ku[s, j, i] * P[s, q]
                        Q[nc, q] = acc
                    nc += 1
        theta = 1.0
        nflip = 0
        if nc > 0:
            theta, nflip = locate(
                cand, nc, sgn, u0s, Q, h, sc_old, n, min(rtol, EVENT_RTOL), atol, flips, band
            )
        exit_check = False
        if any_sliding:
            for j in range(m):
                if scnt[j] > 0 and a[j] != 0.0 and a[j] * na[j] <= 0.0:
                    exit_check = True  # a sliding neuron's output weight changes sign
                for p in range(scnt[j]):
                    al = alpha[j, p]
                    if al < -SLIDE_MARGIN or al > 1.0 + SLIDE_MARGIN:
                        exit_check = True
        if nflip > 0 or exit_check:
            fs[F_T] = t
            fs[F_H] = h
            fs[F_THETA] = theta
            fs[F_RATIO] = ratio
            fs[F_LOSS6] = loss6
            ist[I_NFLIP] = nflip
            ist[I_EXIT] = 1 if exit_check else 0
            code = EVENT
            break
        # ---- a smooth step: record, accept
        t_hi = min(t + h, t_end)
        bt, bl, ba, bw, bc, npts, last = record_points(
            P, t, t_hi, h, a, u, z, Ka, Ku, Kz, mask, y, w_perp_sq, balance0, fs, ist,
            grid_ratio, bt, bl, ba, bw, bc,
        )
        ist[I_STEPS] += 1
        h_prop = h * min(5.0, max(0.2, 0.9 * max(ratio, 1e-10) ** -0.2))
        for j in range(m):
            a[j] = na[j]
            Ka[0, j] = Ka[6, j]
            for i in range(n):
                u[j, i] = nu[j, i]
                acc = 0.0
                for q in range(6):
                    acc += B[q] * Kz[q, j, i]
                z[j, i] += h * acc
                Ku[0, j, i] = Ku[6, j, i]
                Kz[0, j, i] = Kz[6, j, i]
        t = t + h
        h = h_prop
        loss = loss6
        fs[F_LOSS] = loss
        if loss <= loss_tol:
            code = LOSS_TOL
            break
        if stalled(Ka[0], Ku[0], Kz[0], a, u, fs, t, loss, stall_rate, loss_tol, rate_unit):
            code = STALLED
            break
    fs[F_T] = t
    fs[F_H] = h
    return code, bt, bl, ba, bw, bc


@njit(cache=True)
def sliding_alpha(a, u, y, Kg, mask, inv_n, scnt, sidx, sinv, alpha, r, Q):
    """The sliding fractions alone (into ``alpha``; ``r`` gets the residual, ``Q`` the
    hold multipliers): :func:`holds` at ``(a, u)``."""
    residual(a, u, y, mask, r)
    holds(a, r, Kg, mask, inv_n, scnt, sidx, sinv, alpha, Q)


@njit(cache=True)
def _reference_masks(a, mask, scnt):
    """A reference activity per sign of ``a_j`` for the exit polynomials ``K_Σ·(R ∘ mask_j)``.

    The neurons of one sign share most of their activity: with ``ref_g`` the majority
    mask of the sliding neurons of sign ``g`` (0: ``a_j >= 0``, 1: ``a_j < 0``),
    ``K_Σ·(v ∘ mask_j) = (K (v ∘ ref_g))_Σ + K_Σ,D (±v_D)`` over the samples ``D`` where
    ``mask_j`` differs from ``ref_g``: one ``n × n`` product per sign and ``|Σ_j| |D_j|``
    terms per neuron, instead of ``|Σ_j|`` gathered rows over the active samples (at
    ``n = 1000``, ``m = 24``: 7.4 instead of 13.3 ms per exit search; for the single
    products of the field's holds it measured no faster, so they stay direct).
    A sign whose reference does not pay (few sliding coordinates) gets ``use[g] = False``
    and an empty reference (``D`` is then the active set). Returns ``(ref, use)``.
    """
    m, n = mask.shape
    ref = np.zeros((2, n), dtype=np.bool_)
    use = np.zeros(2, dtype=np.bool_)
    cnt = np.empty(n, dtype=np.int64)
    for g in range(2):
        cnt[:] = 0
        tot = 0
        for j in range(m):
            if scnt[j] > 0 and (a[j] >= 0.0) == (g == 0):
                tot += 1
                for i in range(n):
                    if mask[j, i]:
                        cnt[i] += 1
        if tot == 0:
            continue
        for i in range(n):
            ref[g, i] = 2 * cnt[i] > tot
        # the reference pays when it saves more than its own n × n product
        cost_ref = n * n // 4  # BLAS on whole rows: about 4x cheaper per term than gathers
        cost_dir = 0
        for j in range(m):
            if scnt[j] > 0 and (a[j] >= 0.0) == (g == 0):
                nd = 0
                na = 0
                for i in range(n):
                    act = mask[j, i] != 0
                    na += act
                    nd += act != ref[g, i]
                cost_ref += scnt[j] * nd
                cost_dir += scnt[j] * na
        if cost_ref < cost_dir:
            use[g] = True
        else:
            ref[g, :] = False
    return ref, use


@njit(cache=True)
def holds(a, r, Kg, mask, inv_n, scnt, sidx, sinv, alpha, Q):
    """Filippov holds of the sliding sets, given the residual ``r``.

    For each neuron with a sliding set ``Σ``: ``du_jΣ = −a_j (K g_j)_Σ`` in O(n |Σ|)
    (``K`` symmetric: rows ``K_Σ·``; ``g_j = r ∘ mask_j / n``), the multipliers
    ``q = K_ΣΣ⁻¹ du_jΣ`` into ``Q[j, :|Σ|]`` and the fractions ``α = q / (a_j r_Σ / n)``
    into ``alpha`` (inf where undefined). The field (:func:`evaluate`), the exit search
    and the decision at an event all take them from here: the same arithmetic.
    """
    m, n = mask.shape
    act = np.empty(n, dtype=np.int64)
    ra = np.empty(n)
    dus = np.empty(max(1, sidx.shape[1]))
    for j in range(m):
        c = scnt[j]
        if c == 0:
            continue
        na = 0
        for i in range(n):
            if mask[j, i]:
                act[na] = i
                ra[na] = r[i]
                na += 1
        _masked_dots(Kg, sidx[j], c, act, ra, na, -a[j], inv_n, dus)
        q = Q[j]
        _matvec(sinv[j], dus, c, q)
        for p in range(c):
            i = sidx[j, p]
            den = a[j] * (r[i] * inv_n)
            al = q[p] / den if den != 0.0 else np.nan
            alpha[j, p] = al if al == al else np.inf


@njit(cache=True)
def _masked_dots(K, rows, c, act, ra, na, scale, inv_n, out):
    """``out[p] = scale · (Σ_k ra_k K[rows_p, act_k]) · inv_n`` for ``p < c``, each sum in
    the order of ``k`` (four rows at a time)."""
    p = 0
    while p + 4 <= c:
        k0, k1, k2, k3 = K[rows[p]], K[rows[p + 1]], K[rows[p + 2]], K[rows[p + 3]]
        s0 = s1 = s2 = s3 = 0.0
        for k in range(na):
            i = act[k]
            rk = ra[k]
            s0 += rk * k0[i]
            s1 += rk * k1[i]
            s2 += rk * k2[i]
            s3 += rk * k3[i]
        out[p] = scale * s0 * inv_n
        out[p + 1] = scale * s1 * inv_n
        out[p + 2] = scale * s2 * inv_n
        out[p + 3] = scale * s3 * inv_n
        p += 4
    while p < c:
        kp = K[rows[p]]
        acc = 0.0
        for k in range(na):
            acc += ra[k] * kp[act[k]]
        out[p] = scale * acc * inv_n
        p += 1


@njit(cache=True)
def _excess(P, th, h, a, u, Ka, Ku, y, Kg, mask, scnt, sidx, sinv, alpha, sa, su, ka, ku, kz, r, G):
    """How far the furthest sliding fraction is outside its band at θ (> 0: outside)."""
    b = np.empty(7)
    p1 = th
    p2 = th * th
    p3 = p2 * th
    p4 = p2 * p2
    for s in range(7):
        b[s] = P[s, 0] * p1 + P[s, 1] * p2 + P[s, 2] * p3 + P[s, 3] * p4
    m, n = u.shape
    for j in range(m):
        acc = 0.0
        for s in range(7):
            acc += b[s] * Ka[s, j]
        sa[j] = a[j] + h * acc
        for i in range(n):
            acc = 0.0
            for s in range(7):
                acc += b[s] * Ku[s, j, i]
            su[j, i] = u[j, i] + h * acc
    sliding_alpha(sa, su, y, Kg, mask, 1.0 / n, scnt, sidx, sinv, alpha, r, ka)
    lo_b = -SLIDE_MARGIN
    hi_b = 1.0 + SLIDE_MARGIN
    ex = -np.inf
    for j in range(m):
        for p in range(scnt[j]):
            al = alpha[j, p]
            ex = max(ex, max(lo_b - al, al - hi_b))
    return ex


@njit(cache=True)
def locate_exit(P, h, theta_max, a, u, Ka, Ku, y, Kg, mask, scnt, sidx, sinv, alpha):
    """``reluflow._engines.events.locate_sliding_exit`` (grid of 4, then Illinois); −1 for None."""
    m, n = u.shape
    sa = np.empty(m)
    su = np.empty((m, n))
    ka = np.empty((m, max(1, sidx.shape[1])))  # scratch: the hold multipliers
    ku = np.empty((1, 1))
    kz = np.empty((1, 1))
    r = np.empty(n)
    G = np.empty((1, 1))
    lo = 0.0
    g_lo = _excess(P, 0.0, h, a, u, Ka, Ku, y, Kg, mask, scnt, sidx, sinv, alpha,
                   sa, su, ka, ku, kz, r, G)
    hi = -1.0
    g_hi = 0.0
    step = theta_max / 4.0
    for k in range(1, 5):
        g = k * step if k < 4 else theta_max
        e = _excess(P, g, h, a, u, Ka, Ku, y, Kg, mask, scnt, sidx, sinv, alpha,
                    sa, su, ka, ku, kz, r, G)
        if e > 0:
            hi = g
            g_hi = e
            break
        lo = g
        g_lo = e
    if hi < 0:
        return -1.0
    side = 0
    for _ in range(100):
        if hi - lo <= 1e-13 * max(hi, 1e-300) + 1e-300:
            break
        if g_hi != g_lo:
            mid = hi - g_hi * (hi - lo) / (g_hi - g_lo)
        else:
            mid = 0.5 * (lo + hi)
        if not (lo < mid < hi):
            mid = 0.5 * (lo + hi)
        e = _excess(P, mid, h, a, u, Ka, Ku, y, Kg, mask, scnt, sidx, sinv, alpha,
                    sa, su, ka, ku, kz, r, G)
        if e > 0:
            hi = mid
            g_hi = e
            if side == 1:
                g_lo *= 0.5
            side = 1
        else:
            lo = mid
            g_lo = e
            if side == -1:
                g_hi *= 0.5
            side = -1
    return hi


@njit(cache=True)
def _exit_polys(P, h, a, u, Ka, Ku, y, Kg, mask, scnt, sidx, sinv):
    """Polynomial form in θ of what :func:`_excess` evaluates on a step's dense output.

    With the mask frozen, ``a_j(θ)`` and ``u_ji(θ)`` are quartics in θ, so the residual
    ``r_i(θ) = Σ_j a_j u_ji 1[mask_ji] − y_i`` is a polynomial of degree 8 (``R[i]``), and
    so is ``N_j(θ) = K_ΣΣ⁻¹ (K (r(θ) ∘ mask_j))_Σ`` (``N[j, p]``): the sliding fraction
    ``α_p = q_p / (a_j r_i / n)`` with ``q = K_ΣΣ⁻¹ du_jΣ = −(a_j/n) N_j`` is
    ``−N_jp(θ) / r_i(θ)``. Building both costs two ``n × n`` by ``n × 9`` products (one
    reference activity per sign of ``a_j``) plus, per neuron, the samples where its
    activity differs from its reference; each trial point of the exit search then costs
    O(Σ_j |Σ_j|).
    Returns ``(R, N, A)`` with ``A[j]`` the quartic ``a_j(θ)``.
    """
    m, n = u.shape
    ca = np.zeros((m, 5))
    cu = np.zeros((n, 5))
    R = np.zeros((n, 9))
    for i in range(n):
        R[i, 0] = -y[i]
    for j in range(m):
        ca[j, 0] = a[j]
        for q in range(4):
            acc = 0.0
            for s in range(7):
                acc += Ka[s, j] * P[s, q]
            ca[j, q + 1] = h * acc
    for j in range(m):
        for i in range(n):
            if not mask[j, i]:
                continue
            cu[i, 0] = u[j, i]
            for q in range(4):
                acc = 0.0
                for s in range(7):
                    acc += Ku[s, j, i] * P[s, q]
                cu[i, q + 1] = h * acc
            for p in range(5):
                for q in range(5):
                    R[i, p + q] += ca[j, p] * cu[i, q]
    smax = max(1, sidx.shape[1])
    N = np.zeros((m, smax, 9))
    # T_j = K_Σ·(R ∘ mask_j) for every neuron with a sliding set, through a reference
    # mask per sign of a_j (the neurons of one sign share most of their activity):
    # T_j = (K (R ∘ ref))_Σ + K_Σ,D (±R_D) on the samples D where mask_j differs from
    # the reference: one n × n by n × 9 product per sign and small ones, instead of
    # Σ_j |Σ_j| × n × 9 multiply-adds on gathered rows of K. Where that costs more
    # (few sliding coordinates), the reference is empty and D is the active set.
    ref, use = _reference_masks(a, mask, scnt)
    KR = np.zeros((2, n, 9))
    Rm = np.empty((n, 9))
    for g in range(2):
        if not use[g]:
            continue
        for i in range(n):
            w = 1.0 if ref[g, i] else 0.0
            for k in range(9):
                Rm[i, k] = w * R[i, k]
        KR[g] = np.dot(Kg, Rm)
    diff = np.empty(n, dtype=np.int64)
    T = np.zeros((smax, 9))
    for j in range(m):
        c = scnt[j]
        if c == 0:
            continue
        g = 0 if a[j] >= 0.0 else 1
        nd = 0
        for i in range(n):
            if (mask[j, i] != 0) != ref[g, i]:
                diff[nd] = i
                nd += 1
        for p in range(c):
            row = sidx[j, p]
            for k in range(9):
                T[p, k] = KR[g, row, k]
        if nd > 0:
            Kd = np.empty((c, nd))
            Rd = np.empty((nd, 9))
            for q in range(nd):
                i = diff[q]
                w = 1.0 if mask[j, i] else -1.0
                Ki = Kg[i]  # K symmetric: K[row, i] = K[i, row]
                for p in range(c):
                    Kd[p, q] = Ki[sidx[j, p]]
                for k in range(9):
                    Rd[q, k] = w * R[i, k]
            T[:c] += np.dot(Kd, Rd)
        Sinv = np.empty((c, c))
        for p in range(c):
            for q in range(c):
                Sinv[p, q] = sinv[j, p, q]
        N[j, :c, :] = np.dot(Sinv, T[:c])
    return R, N, ca


@njit(cache=True)
def _sliding_samples(scnt, sidx, n):
    """The samples sliding in some neuron (sorted)."""
    seen = np.zeros(n, dtype=np.bool_)
    for j in range(scnt.shape[0]):
        for p in range(scnt[j]):
            seen[sidx[j, p]] = True
    return np.flatnonzero(seen)


@njit(cache=True)
def _excess_poly(th, R, N, ca, scnt, sidx, alpha):
    """:func:`_excess` at θ from the polynomials of :func:`_exit_polys`."""
    used = _sliding_samples(scnt, sidx, R.shape[0])
    return _excess_poly_at(th, R, N, ca, scnt, sidx, alpha, used, used.size, np.empty(R.shape[0]))


@njit(cache=True)
def _excess_poly_at(th, R, N, ca, scnt, sidx, alpha, used, nused, rv):
    """:func:`_excess_poly` with ``used[:nused]`` the samples sliding in some neuron:
    ``r_i(θ)`` is evaluated once per sample (into ``rv``), not once per sliding pair."""
    m = scnt.shape[0]
    lo_b = -SLIDE_MARGIN
    hi_b = 1.0 + SLIDE_MARGIN
    for k in range(nused):
        i = used[k]
        ri = 0.0
        for d in range(8, -1, -1):
            ri = ri * th + R[i, d]
        rv[i] = ri
    ex = -np.inf
    for j in range(m):
        c = scnt[j]
        if c == 0:
            continue
        aj = 0.0
        for k in range(4, -1, -1):
            aj = aj * th + ca[j, k]
        for p in range(c):
            ri = rv[sidx[j, p]]
            nv = 0.0
            for k in range(8, -1, -1):
                nv = nv * th + N[j, p, k]
            al = -nv / ri if aj * ri != 0.0 else np.nan
            al = al if al == al else np.inf
            alpha[j, p] = al
            ex = max(ex, max(lo_b - al, al - hi_b))
    return ex


@njit(cache=True)
def locate_exit_poly(P, h, theta_max, a, u, Ka, Ku, y, Kg, mask, scnt, sidx, sinv, alpha):
    """:func:`locate_exit` (grid of 4, then Illinois to ``1e-13``) on the polynomial form.

    The same function of θ up to rounding (:func:`_exit_polys`): each trial point costs
    O(Σ_j |Σ_j|) instead of a dense state and the sliding rows of a field evaluation.
    −1 for None; otherwise ``alpha`` holds the fractions at the returned point, in the
    search's arithmetic (the caller takes the exited neurons from them, so that the
    resolution sees the exit that was located).
    """
    R, N, ca = _exit_polys(P, h, a, u, Ka, Ku, y, Kg, mask, scnt, sidx, sinv)
    used = _sliding_samples(scnt, sidx, R.shape[0])
    nused = used.size
    rv = np.empty(R.shape[0])
    lo = 0.0
    g_lo = _excess_poly_at(0.0, R, N, ca, scnt, sidx, alpha, used, nused, rv)
    hi = -1.0
    g_hi = 0.0
    step = theta_max / 4.0
    for k in range(1, 5):
        g = k * step if k < 4 else theta_max
        e = _excess_poly_at(g, R, N, ca, scnt, sidx, alpha, used, nused, rv)
        if e > 0:
            hi = g
            g_hi = e
            break
        lo = g
        g_lo = e
    if hi < 0:
        return -1.0
    side = 0
    for _ in range(100):
        if hi - lo <= 1e-13 * max(hi, 1e-300) + 1e-300:
            break
        if g_hi != g_lo:
            mid = hi - g_hi * (hi - lo) / (g_hi - g_lo)
        else:
            mid = 0.5 * (lo + hi)
        if not (lo < mid < hi):
            mid = 0.5 * (lo + hi)
        e = _excess_poly_at(mid, R, N, ca, scnt, sidx, alpha, used, nused, rv)
        if e > 0:
            hi = mid
            g_hi = e
            if side == 1:
                g_lo *= 0.5
            side = 1
        else:
            lo = mid
            g_lo = e
            if side == -1:
                g_hi *= 0.5
            side = -1
    # leave in alpha the fractions at the returned point, in the arithmetic of the
    # search: the caller decides which neurons left their sliding mode from them
    _excess_poly_at(hi, R, N, ca, scnt, sidx, alpha, used, nused, rv)
    return hi

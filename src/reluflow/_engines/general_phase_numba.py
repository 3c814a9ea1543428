"""Compiled event loop of the closed-form initial phase on general data.

The mathematics is that of :mod:`reluflow._engines.general_phase` (docs/general-data.md
§1–2): neuron ``j`` moves on the segment ``u_j = U + A(τ) V``, ``a_j(τ)``, with
``V = K e / n`` and ``κ² = eᵀ K e / n²`` constant between its events; its next
event is the first root of ``A(τ) = −U_i / V_i`` over its non-sliding
coordinates (a quadratic in ``e^{κτ} − 1``), or, while it has sliding
coordinates, the zero of ``a_j(τ)`` if that comes first (there every sliding
coordinate turns repelling and is released); at the event its zero set is
re-decided by single principal pivots on ``M = K_ΣΣ⁻¹`` (bordered inverse or
its downdate), and ``e``, ``V`` change by the ``K`` rows of the coordinates
whose label changed. :func:`grid` runs the events of all neurons in time
order through the recorder's time grid without leaving the kernel; an event
that the pivots do not settle (several coordinates crossing at once, a zero
label, a singular pivot) is handed back to Python, which resolves it with
:meth:`reluflow._engines.field.Field.resolve_zero_set`. Per event the cost is
O(n |Σ_j|) (the change of ``V``) plus O(|Σ_j|²) per pivot and per product
with ``M``; no BLAS call, and every sum in a fixed order, so that the result
does not depend on the BLAS build or its threads.

State layout (arrays owned by the caller, rows are neurons):

* ``P`` (m, 7) float: ``t0, a0, q0, κ, v0, t_next, τ_next`` (segment start,
  output weight and in-span norm there, rate, ``a'(0)``, next event time and
  its time since ``t0``);
* ``R`` (3, m, n) float: ``U, e, V``; ``B`` (2, m, n) bool: active, sliding;
* ``X`` (2, m, n) int64: the sliding set ``Σ`` in the order of ``M``'s rows,
  the coordinates crossing at the next event; ``C`` (m, 2) int64: their counts;
* ``RHS`` (m, n) float: ``−K_Σ,S y_S``;
* ``pool`` (rows, cap) float: the matrices ``M``, row-major with stride ``|Σ_j|``
  at the head of a pool row; ``mr`` (2, m) int64: the pool rows of each neuron's
  current ``M`` and of its snapshot (−1: none); ``free``: a stack of unused pool
  rows, ``ctr[2]`` of them. ``M`` changes out of place (a bordered inverse or
  a downdate is written to a free row, the old row is freed or kept as the
  snapshot), so that a snapshot never copies it.

Rollback (the outputs reached the bound inside a grid interval): the first
event of a neuron after :func:`clear` copies its row into the ``s*`` arrays
(``M`` is not copied: its first change after the snapshot is written to a
new buffer and the old one kept), and :func:`rollback` restores them and
drops the later log entries.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np
from numba import njit

from .field import SLIDE_MARGIN

# relative spread of crossing times flipped in one event of a neuron
SAME_TIME = 1e-12
# the crossings are searched among the roots w = e^{κτ} − 1 within this relative distance
# of the least one (log1p only there): a τ within SAME_TIME of the least has its w within
# SAME_TIME (1 + w) log1p(w) / w <= 710 SAME_TIME of it in float64, well inside 1e-6
_W_SLACK = 1e-6

T0, A0, Q0, KAP, V0, TNEXT, CTAU = range(7)
N_P = 7
FALLBACK, LOG_FULL, GROW, ROWS_FULL, NOT_SMALL, AT_CAP = range(6)

# zone of a coordinate of the zero set during the pivots
_OUT, _LOW, _UP, _FREE = 0, 1, 2, 3

Work = namedtuple("Work", "F fx idx zs rhs sa eF al kF mF mk acc coef wb tb")


def work(n: int) -> Work:
    """Work arrays of the kernel for ``n`` samples (``zs`` must start at 0)."""
    ints = [np.zeros(n, dtype=np.int64) for _ in range(3)]
    floats = [np.zeros(n) for _ in range(11)]
    return Work(*ints[:3], np.zeros(n, dtype=np.int8), *floats)


@njit(cache=True)
def alpha_a(a0, v0, kap, tau):
    """``(A(τ), a(τ))`` of a segment: ``A = a₀ τ sinhc(κτ) + v₀ τ² (cosh κτ − 1)/(κτ)²``."""
    x = kap * tau
    sh = math.sinh(x)
    ch = math.cosh(x)
    if x != 0:
        s1 = sh / x
        hx = math.sinh(0.5 * x)
        c1 = 2.0 * hx * hx / (x * x)
    else:
        s1 = 1.0
        c1 = 0.5
    A = a0 * tau * s1 + v0 * tau * tau * c1
    a = a0 * ch + v0 * tau * s1
    return A, a


@njit(cache=True)
def _root_w(a0, kap, p, alpha_star):
    """Least ``w = e^{κτ} − 1 > 0`` with ``p w² + 2 (a₀ − κ α*) w − 2 κ α* = 0`` (inf if none)."""
    B = a0 - kap * alpha_star
    C = -2.0 * kap * alpha_star
    D = B * B - p * C
    if not D >= 0:
        return np.inf
    sq = math.sqrt(D)
    # the cancellation-free pair q/p, C/q
    qq = -(B + sq) if B >= 0 else -(B - sq)
    if p != 0.0:
        w1 = qq / p
        w2 = C / qq if qq != 0 else np.inf
    else:
        w1 = -C / (2.0 * B) if B != 0 else np.inf
        w2 = np.inf
    if not w1 > 0:
        w1 = np.inf
    if not w2 > 0:
        w2 = np.inf
    return min(w1, w2)


@njit(cache=True)
def _sign_change(a0, v0, kap):
    """Least ``τ > 0`` with ``a(τ) = a₀ cosh κτ + (v₀/κ) sinh κτ = 0`` (inf if none).

    ``tanh κτ = −a₀κ/v₀`` (``τ = −a₀/v₀`` at ``κ = 0``, where ``a`` is constant unless
    ``v₀ != 0``, which needs something active, so ``κ > 0``; kept for completeness).
    """
    if v0 == 0.0 or a0 == 0.0:
        return np.inf
    if kap == 0.0:
        tau = -a0 / v0
        return tau if tau > 0 else np.inf
    x = -a0 * kap / v0
    if not (x > 0.0 and x < 1.0):
        return np.inf
    return math.atanh(x) / kap


@njit(cache=True)
def segment(j, K, P, R, B, X, C, wb, tb):
    """Constants ``κ, v₀`` of neuron ``j``'s segment, its next crossing time and coordinates.

    The next crossing is the least root ``τ`` over the non-sliding coordinates
    with ``V_i != 0``; every coordinate whose root is within ``SAME_TIME``
    (relative) of it crosses in the same event. If the neuron has sliding
    coordinates and ``a_j`` changes sign first (:func:`_sign_change`), the event
    is there with no crossing coordinate: a sliding mode needs ``a_j y_i < 0``,
    so from that time on each of them repels (docs/general-data.md, rank-deficient
    data) and the caller re-decides them. ``wb``, ``tb``: work arrays (n).
    """
    n = K.shape[0]
    U, E, V = R[0, j], R[1, j], R[2, j]
    slid = B[1, j]
    kap = math.sqrt(max(_dot(E, V, n) / n, 0.0))
    v0 = _dot(E, U, n) / n
    P[j, KAP] = kap
    P[j, V0] = v0
    a0 = P[j, A0]
    ncand = 0
    tmin = np.inf
    if kap == 0.0:
        # nothing active: a_j is constant and A = a₀ τ
        for i in range(n):
            tb[i] = -1.0
            if slid[i] or V[i] == 0:
                continue
            ncand += 1
            tau = (-U[i] / V[i]) / a0 if a0 != 0 else np.inf
            if not tau > 0:
                tau = np.inf
            tb[i] = tau
            if tau < tmin:
                tmin = tau
    else:
        p = a0 + v0 / kap
        wmin = np.inf
        for i in range(n):
            if slid[i] or V[i] == 0:
                wb[i] = -1.0
                continue
            ncand += 1
            w = _root_w(a0, kap, p, -U[i] / V[i])
            wb[i] = w
            if w < wmin:
                wmin = w
        # τ = log1p(w)/κ increases with w: only the w near the least one can tie with it
        wcut = wmin * (1.0 + _W_SLACK)
        for i in range(n):
            tb[i] = -1.0
            if wb[i] >= 0 and wb[i] <= wcut:
                tau = math.log1p(wb[i]) / kap
                tb[i] = tau
                if tau < tmin:
                    tmin = tau
    # a sliding mode needs a_j y_i < 0 (attracting); when a_j changes sign every sliding
    # coordinate of the neuron turns repelling and is released: an event with no crossing
    tau_a = _sign_change(a0, v0, kap) if C[j, 0] > 0 else np.inf
    if tau_a < tmin:
        P[j, TNEXT] = P[j, T0] + tau_a
        P[j, CTAU] = tau_a
        C[j, 1] = 0
        return
    if ncand == 0:
        P[j, TNEXT] = np.inf
        P[j, CTAU] = np.inf
        C[j, 1] = 0
        return
    thr = tmin * (1.0 + SAME_TIME)
    c = 0
    for i in range(n):
        if tb[i] >= 0 and tb[i] <= thr:
            X[1, j, c] = i
            c += 1
    P[j, TNEXT] = P[j, T0] + tmin
    P[j, CTAU] = tmin
    C[j, 1] = c


@njit(cache=True)
def state_at(t, P, R, B):
    """``(a, u, q, f)`` of every neuron at ``t`` (no event before ``t``): ``f = a σ(u)``."""
    m, n = R.shape[1], R.shape[2]
    a = np.empty(m)
    q = np.empty(m)
    u = np.empty((m, n))
    up = np.empty((m, n))
    for j in range(m):
        tau = t - P[j, T0]
        A, aj = alpha_a(P[j, A0], P[j, V0], P[j, KAP], tau)
        a[j] = aj
        kap = P[j, KAP]
        q[j] = P[j, Q0] + 2.0 * A * P[j, V0] + A * A * (kap * kap)
        for i in range(n):
            v = R[0, j, i] + A * R[2, j, i]
            if B[1, j, i]:
                v = 0.0
            u[j, i] = v
            up[j, i] = v if v > 0.0 else 0.0
    f = np.zeros(n)
    for j in range(m):
        aj = a[j]
        for i in range(n):
            f[i] += aj * up[j, i]
    return a, u, q, f


@njit(cache=True)
def _copy(j, P, R, B, X, C, RHS, dP, dR, dB, dX, dC, dRHS):
    """Copy neuron ``j``'s row of the state into ``d*`` (snapshot, or back), ``M`` apart."""
    n = R.shape[2]
    for k in range(P.shape[1]):
        dP[j, k] = P[j, k]
    for k in range(3):
        for i in range(n):
            dR[k, j, i] = R[k, j, i]
    for k in range(2):
        for i in range(n):
            dB[k, j, i] = B[k, j, i]
    f, c = C[j, 0], C[j, 1]
    dC[j, 0] = f
    dC[j, 1] = c
    for p in range(f):
        dX[0, j, p] = X[0, j, p]
        dRHS[j, p] = RHS[j, p]
    for p in range(c):
        dX[1, j, p] = X[1, j, p]


@njit(cache=True)
def _take(free, ctr):
    """A free pool row."""
    ctr[2] -= 1
    return free[ctr[2]]


@njit(cache=True)
def _put(j, D, mr, sflag, msaved, free, ctr):
    """Make pool row ``D`` neuron ``j``'s ``M``; the old row becomes the snapshot or is freed."""
    old = mr[0, j]
    mr[0, j] = D
    if sflag[j] and not msaved[j]:
        mr[1, j] = old
        msaved[j] = True
    else:
        free[ctr[2]] = old
        ctr[2] += 1


@njit(cache=True)
def set_m(j, Mflat, pool, mr, sflag, msaved, free, ctr):
    """Give neuron ``j`` the row-major ``M`` in ``Mflat`` (needs a free row of room)."""
    D = _take(free, ctr)
    pool[D, : Mflat.size] = Mflat
    _put(j, D, mr, sflag, msaved, free, ctr)


@njit(cache=True)
def clear(sflag, msaved, mr, free, ctr):
    """Forget the snapshots (their ``M`` rows go back to the free stack)."""
    for j in range(sflag.size):
        if msaved[j]:
            free[ctr[2]] = mr[1, j]
            ctr[2] += 1
            mr[1, j] = -1
        sflag[j] = False
        msaved[j] = False


@njit(cache=True)
def rollback(
    t_lo, P, R, B, X, C, RHS, mr, sP, sR, sB, sX, sC, sRHS, sflag, msaved, free, Lt, Ls, ctr
):
    """Restore every snapshot neuron and drop the log entries after ``t_lo``.

    The snapshots stay (a later rollback to the same time may follow).
    """
    m = P.shape[0]
    for j in range(m):
        if not sflag[j]:
            continue
        _copy(j, sP, sR, sB, sX, sC, sRHS, P, R, B, X, C, RHS)
        if msaved[j]:
            # the snapshot's M becomes current; its next change saves it again
            free[ctr[2]] = mr[0, j]
            ctr[2] += 1
            mr[0, j] = mr[1, j]
            mr[1, j] = -1
            msaved[j] = False
    k = ctr[0]
    while k > 0 and Lt[k - 1] > t_lo:
        k -= 1
        if Ls[k]:
            ctr[1] -= 1
    ctr[0] = k


@njit(cache=True)
def _dot(x, y, f):
    """``Σ_{c<f} x_c y_c`` in four interleaved partial sums (a fixed order)."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    c = 0
    while c + 4 <= f:
        s0 += x[c] * y[c]
        s1 += x[c + 1] * y[c + 1]
        s2 += x[c + 2] * y[c + 2]
        s3 += x[c + 3] * y[c + 3]
        c += 4
    while c < f:
        s0 += x[c] * y[c]
        c += 1
    return (s0 + s1) + (s2 + s3)


@njit(cache=True)
def _matvec(M, f, x, out):
    """``out = M x`` for the row-major ``f × f`` matrix stored at the head of ``M``."""
    for r in range(f):
        out[r] = _dot(M[r * f : r * f + f], x, f)


@njit(cache=True)
def _downdate(M, f, p, mk, D):
    """``D ← M_{−p,−p} − M_{−p,p} M_{−p,p}ᵀ / M_pp`` (``f − 1`` square, row-major)."""
    mpp = M[p * f + p]
    k = 0
    for r in range(f):
        if r != p:
            mk[k] = M[r * f + p]
            k += 1
    g = f - 1
    for rr in range(g):
        r = rr if rr < p else rr + 1
        h = mk[rr] / mpp
        src = M[r * f : r * f + f]  # row views: loops from 0 vectorise
        dst = D[rr * g : rr * g + g]
        for cc in range(p):
            dst[cc] = src[cc] - h * mk[cc]
        src1 = src[1:]
        for cc in range(p, g):
            dst[cc] = src1[cc] - h * mk[cc]


@njit(cache=True)
def _border(M, f, mF, sc, D):
    """Bordered inverse ``D ← [[M + m mᵀ/s, −m/s], [−mᵀ/s, 1/s]]`` (``f + 1`` square)."""
    g = f + 1
    for r in range(f):
        h = mF[r] / sc
        src = M[r * f : r * f + f]
        dst = D[r * g : r * g + g]
        for c in range(f):
            dst[c] = src[c] + h * mF[c]
        dst[f] = -mF[r] / sc
    last = D[f * g : f * g + g]
    for c in range(f):
        last[c] = -mF[c] / sc
    last[f] = 1.0 / sc


@njit(cache=True)
def _add_rows(K, idx, coef, cnt, acc):
    """``acc = Σ_k coef[k] K[idx[k]]`` (rows of ``K`` four at a time)."""
    n = acc.size
    for i in range(n):
        acc[i] = 0.0
    k = 0
    while k + 4 <= cnt:
        r0, r1, r2, r3 = K[idx[k]], K[idx[k + 1]], K[idx[k + 2]], K[idx[k + 3]]
        c0, c1, c2, c3 = coef[k], coef[k + 1], coef[k + 2], coef[k + 3]
        for i in range(n):
            acc[i] += (c0 * r0[i] + c1 * r1[i]) + (c2 * r2[i] + c3 * r3[i])
        k += 4
    while k < cnt:
        r0 = K[idx[k]]
        c0 = coef[k]
        for i in range(n):
            acc[i] += c0 * r0[i]
        k += 1


@njit(cache=True)
def _incremental(
    j, a, i, t, K, y, R, B, X, C, RHS, pool, mr, sflag, msaved, free, Lt, Lf, Lu, Ls, ctr, w
):
    """Resolve neuron ``j``'s zero set ``{i} ∪ Σ`` by single principal pivots on ``M = K_ΣΣ⁻¹``.

    The modes solve the box complementarity problem of
    :meth:`reluflow._engines.field.Field.resolve_zero_set` with ``r = −y``: free
    coordinates ``F`` (sliding) with ``α`` inside the hysteresis band and
    ``e_F = −K_FF⁻¹ K_F,S y_S``; fixed ones inactive (``L``, velocity <= 0) or
    active (``U``, velocity >= 0), the velocity being ``a (K e)_k / n``. From
    ``F = Σ`` and ``i`` inactive, the violating coordinate of least index
    changes side (Murty's rule) and ``M`` gets a bordered inverse or its
    downdate. On success the modes, ``Σ``, ``M``, ``−K_ΣS y_S``, ``e``, ``V``
    and the log are updated and True is returned; False (zero label, singular
    pivot, no settling) leaves all but ``M`` as they were (the caller rebuilds
    ``M``).
    """
    n = y.size
    if y[i] == 0.0:
        return False
    E, V = R[1, j], R[2, j]
    mask, slid = B[0, j], B[1, j]
    F, fx, zs = w.F, w.fx, w.zs
    rhs, sa, eF, al, kF, mF, mk = w.rhs, w.sa, w.eF, w.al, w.kF, w.mF, w.mk
    acc, coef = w.acc, w.coef
    f0 = C[j, 0]
    f = f0
    for p in range(f):
        F[p] = X[0, j, p]
        rhs[p] = RHS[j, p]
        zs[F[p]] = _FREE
    for k in range(n):
        sa[k] = y[k] if mask[k] else 0.0
    yi = y[i]
    if mask[i]:
        sa[i] = 0.0
        for p in range(f):
            rhs[p] = rhs[p] + K[F[p], i] * yi  # i leaves S (it starts in L)
    attract_i = -a * yi / n > 0
    zs[i] = _LOW
    fx[0] = i
    nfx = 1
    lo_b, hi_b = SLIDE_MARGIN / 2, 1.0 - SLIDE_MARGIN / 2
    vmax = 0.0
    for k in range(n):
        vmax = max(vmax, abs(V[k]))
    tol = 1e-9 * (abs(a) * (vmax + K[i, i] * abs(yi) / n))
    woken = False
    settled = False
    M = pool[mr[0, j]]
    for _ in range(4 * (f0 + 2)):
        if f:
            _matvec(M, f, rhs, eF)
        kbest = n
        for p in range(f):
            al[p] = eF[p] / y[F[p]]
            if not (al[p] > lo_b and al[p] < hi_b) and F[p] < kbest:
                kbest = F[p]
        for q in range(nfx):
            k = fx[q]
            # velocity a (K e_new)_k / n = a (V_k + K_k,Z (e_new − e)_Z / n)
            s = 0.0
            for p in range(f):
                s += K[k, F[p]] * (eF[p] - E[F[p]])
            for r in range(nfx):
                c = fx[r]
                s += K[k, c] * (sa[c] - E[c])
            vel = a * (V[k] + s / n)
            if zs[k] == _LOW:
                bad = vel > tol and (k != i or attract_i or not woken)
            else:
                bad = vel < -tol and (k != i or attract_i)
            if bad and k < kbest:
                kbest = k
        if kbest == n:
            settled = True
            break
        k = kbest
        if zs[k] == _FREE:
            p = 0
            while F[p] != k:
                p += 1
            to_up = al[p] >= hi_b
            D = _take(free, ctr)
            _downdate(M, f, p, mk, pool[D])
            _put(j, D, mr, sflag, msaved, free, ctr)
            M = pool[D]
            for q in range(p, f - 1):
                F[q] = F[q + 1]
                rhs[q] = rhs[q + 1]
            f -= 1
            if to_up:
                zs[k] = _UP
                sa[k] = y[k]
                for q in range(f):
                    rhs[q] = rhs[q] - K[F[q], k] * y[k]
            else:
                zs[k] = _LOW
            fx[nfx] = k
            nfx += 1
        elif k == i and not attract_i:
            zs[i] = _UP  # a repelling coordinate pushed upwards activates
            sa[i] = yi
            for q in range(f):
                rhs[q] = rhs[q] - K[F[q], i] * yi
            woken = True
        else:
            if zs[k] == _UP:
                sa[k] = 0.0
                for q in range(f):
                    rhs[q] = rhs[q] + K[F[q], k] * y[k]
            q = 0
            while fx[q] != k:
                q += 1
            for r in range(q, nfx - 1):
                fx[r] = fx[r + 1]
            nfx -= 1
            for q in range(f):
                kF[q] = K[F[q], k]
            if f:
                _matvec(M, f, kF, mF)
            s = 0.0
            for q in range(f):
                s += kF[q] * mF[q]
            sc = K[k, k] - s
            if not sc > 1e-12 * K[k, k]:
                break
            D = _take(free, ctr)
            _border(M, f, mF, sc, pool[D])
            _put(j, D, mr, sflag, msaved, free, ctr)
            M = pool[D]
            rhs[f] = -_dot(K[k], sa, n)
            F[f] = k
            zs[k] = _FREE
            f += 1
    if not settled:
        for c in range(n):  # (a singular pivot leaves its coordinate in neither list)
            zs[c] = _OUT
        return False
    # new labels on Z: y (active), e_F (sliding), 0 (inactive); V += K (e_new − e) / n
    cnt = 0
    for p in range(f):
        c = F[p]
        d = eF[p] - E[c]
        E[c] = eF[p]
        if d != 0.0:
            w.idx[cnt] = c
            coef[cnt] = d
            cnt += 1
    for q in range(nfx):
        c = fx[q]
        d = sa[c] - E[c]
        E[c] = sa[c]
        if d != 0.0:
            w.idx[cnt] = c
            coef[cnt] = d
            cnt += 1
    if cnt:
        _add_rows(K, w.idx, coef, cnt, acc)
        for k in range(n):
            V[k] += acc[k] / n
    for p in range(f):
        V[F[p]] = 0.0
    # modes and log, Z in increasing order
    nl = ctr[0]
    for c in range(n):
        z = zs[c]
        if z == _OUT:
            continue
        old_act, old_sl = mask[c], slid[c]
        act, sl = z == _UP, z == _FREE
        mask[c] = act
        slid[c] = sl
        if act != old_act or sl != old_sl:
            Lt[nl] = t
            Lf[nl] = j * n + c
            Lu[nl] = act
            Ls[nl] = sl and not old_sl
            if Ls[nl]:
                ctr[1] += 1
            nl += 1
        zs[c] = _OUT
    ctr[0] = nl
    for p in range(f):
        X[0, j, p] = F[p]
        RHS[j, p] = rhs[p]
    C[j, 0] = f
    return True


@njit(cache=True)
def _next_neuron(P):
    """The neuron with the earliest next event (the first of equal ones)."""
    j = np.int64(0)
    for k in range(1, P.shape[0]):
        if P[k, TNEXT] < P[j, TNEXT]:
            j = np.int64(k)
    return j


@njit(cache=True)
def grid(
    gs, ratio, t_cap, bound, resume, pivots, K, y, P, R, B, X, C, RHS, pool, mr, sP, sR, sB, sX, sC,
    sRHS, sflag, msaved, free, Lt, Lf, Lu, Ls, ctr, w, rt, ra, rq, rl, rc,
):  # fmt: skip
    """Advance through the recorder's grid ``gs[0], gs[0]·ratio, …`` while the outputs are small.

    At each grid time ``T`` (``t_cap`` at the last) the snapshots are cleared,
    the events of every neuron at times ``<= T`` processed in time order, and
    ``|f_i| <= bound_i`` tested; a small state is recorded (``t, a,
    ‖w‖² − ‖w^⊥‖², loss, active counts`` into row ``ctr[3]`` of ``rt, ra, rq,
    rl, rc``) and the grid moves on. ``gs``: ``[next grid time, last small time
    lo, current T]``.

    Returns ``(NOT_SMALL, -1)``: the bound is reached in ``(lo, T]``, the state
    is at ``T``; ``(AT_CAP, -1)``: small up to ``t_cap``. Or, for the caller to
    act on before calling again with ``resume`` (which keeps the snapshots and
    the interval): ``(FALLBACK, j)``, neuron ``j`` has been moved to its event
    (crossing coordinates at 0) and its zero set is left to the caller (always
    so with ``pivots`` False, and at a sign change of ``a_j``, which has no
    crossing coordinate); ``(LOG_FULL, j)``, ``(GROW, j)``: the log, the
    pool need room before neuron ``j``'s event. ``(ROWS_FULL, -1)``: the rows
    need room (call again without ``resume``).
    """
    m, n = P.shape[0], K.shape[0]
    while True:
        T = gs[0]
        last = T >= t_cap
        if last:
            T = t_cap
        gs[2] = T
        if not resume:
            if ctr[3] == rt.size:
                return ROWS_FULL, -1
            clear(sflag, msaved, mr, free, ctr)
        resume = False
        while True:  # the events up to T
            j = _next_neuron(P)
            if not P[j, TNEXT] <= T:
                break
            f, c = C[j, 0], C[j, 1]
            if ctr[0] + f + c > Lt.size:
                return LOG_FULL, j
            if ctr[2] < 2 or pool.shape[1] < (f + 1) * (f + 1):
                return GROW, j  # an event holds at most one more row, of at most (f + 1)²
            if not sflag[j]:
                _copy(j, P, R, B, X, C, RHS, sP, sR, sB, sX, sC, sRHS)
                sflag[j] = True
            tau = P[j, CTAU]
            A, a = alpha_a(P[j, A0], P[j, V0], P[j, KAP], tau)
            U, V, slid = R[0, j], R[2, j], B[1, j]
            for i in range(n):
                U[i] = 0.0 if slid[i] else U[i] + A * V[i]
            for q in range(c):
                U[X[1, j, q]] = 0.0
            kap = P[j, KAP]
            P[j, Q0] = P[j, Q0] + 2.0 * A * P[j, V0] + A * A * (kap * kap)
            t = P[j, T0] + tau
            P[j, T0] = t
            P[j, A0] = a
            if not (
                pivots
                and c == 1
                and _incremental(
                    j, a, X[1, j, 0], t, K, y, R, B, X, C, RHS, pool, mr, sflag, msaved, free,
                    Lt, Lf, Lu, Ls, ctr, w,
                )  # fmt: skip
            ):
                return FALLBACK, j
            segment(j, K, P, R, B, X, C, w.wb, w.tb)
        a, _, q, f = state_at(T, P, R, B)
        for i in range(n):
            if not abs(f[i]) <= bound[i]:
                return NOT_SMALL, -1
        gs[1] = T
        if last:
            return AT_CAP, -1
        k = ctr[3]
        rt[k] = T
        ra[k] = a
        rq[k] = q
        ss = 0.0
        for i in range(n):
            d = f[i] - y[i]
            ss += d * d
        rl[k] = ss / (2 * n)
        for jj in range(m):
            cnt = 0
            for i in range(n):
                if B[0, jj, i]:
                    cnt += 1
            rc[k, jj] = cnt
        ctr[3] = k + 1
        gs[0] = gs[0] * ratio

"""Compiled gradient-flow engine for orthogonal data (docs/orthogonal-flow.md).

The same algorithm as the reference loop in :mod:`reluflow.flow` (Dormand–Prince
5(4) with the ``scipy.integrate.RK45`` tableau, per-neuron error control, ReLU
kinks located as events on the dense output with the mask frozen over a step,
the same step-size controller, stopping rules and recording), specialised to
orthogonal data, where

    du_ji/dt = −(1/n) a_j r_i ‖x_i‖² 1[u_ji > 0],   da_j/dt = −(1/n) Σ_i r_i σ(u_ji).

A coordinate that reaches 0 never moves again, so each neuron keeps a compact
list of its *active* coordinates (sample index and value, in increasing sample
order); a coordinate that dies is dropped from the list and the work of one
field evaluation is O(#active coordinates). Inactive coordinates enter only
through per-neuron constants: the largest ``|u_ji|`` (for the error norm) and
``Σ u_ji² / ‖x_i‖²`` (for ``‖w_j‖``).

Work per step: the field evaluation of stage ``s`` is fused with the
construction of stage ``s + 1`` (one pass over the active coordinates writes
``K_s`` and the next stage state, a second, cache-hot pass per neuron scatters
the next residual); the last stage is fused with the error norm, the neuron
scales and the kink candidates (whose dense-output coefficients are formed from
the stage values already in registers), and a cache-hot pass per neuron forms
what the step's end needs (Rayleigh quotient of the growth frame, speed, largest
output), so that renormalisation, growth frame and plateau test touch the
coordinates only where a frame changes. Trajectory rows form the dense output
coordinate by coordinate as they sum. After
an accepted step without kink the new state and ``K_0 = K_6`` are swapped in,
not copied; after a kink one pass builds the state at the event, drops the
crossed coordinates and scatters the residual, and one more gives ``K_0``.
Floating-point results differ from the numpy loop only by summation order.

Any scale (docs/any-scale.md): neuron ``j`` is held as ``e^{ℓ_j}`` times O(1)
numbers, the outputs weigh it by ``e^{2ℓ_j}`` (per stage, ``ℓ_j + g_j c_s h``
in a growth frame), every neuron is renormalised by an exact power of two
after each step, and the inactive coordinates, ``‖w^⊥‖²`` and the conserved
balance enter through their logs. When the numpy loop would test for a plateau
to cross in closed form (:mod:`reluflow._plateau`), the kernel returns
``PLATEAU`` and the caller does it.

The kernel is resumable: all the state lives in arrays owned by the caller and
:func:`run` returns after ``step_limit`` accepted steps with code ``RUNNING``,
so that a progress bar can be updated between calls; a run in one call and a
run in many calls give bit-identical results.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# return codes of :func:`run`
RUNNING, T_MAX, MAX_STEPS, LOSS_TOL, STALLED, NONFINITE, UNDERFLOW, PLATEAU = 0, 1, 2, 3, 4, 5, 6, 7

# slots of the float state vector ``fs``
F_T, F_H, F_NEXT, F_DRIFT, F_LOSS, F_MARK_T, F_MARK_LOSS = 0, 1, 2, 3, 4, 5, 6
N_FS = 7
# slots of the integer state vector ``ist``
I_STEPS, I_REJ, I_EVALS, I_KINKS, I_KSTEPS, I_NREC, I_NKINK, I_SKIP = 0, 1, 2, 3, 4, 5, 6, 7
N_IST = 8

_LN2 = math.log(2.0)
# successive non-finite trial steps before the run is declared failed (as the numpy loop)
_MAX_FAILS = 60


@njit(cache=True, inline="always")
def _nmax(x, y):
    """``max`` propagating NaN like ``np.maximum``."""
    if x != x:
        return x
    if y != y:
        return y
    return x if x >= y else y


@njit(cache=True, inline="always")
def _ex(x):
    """``exp`` with −inf → 0 (a log of 0)."""
    return math.exp(x) if x > -745.0 else 0.0


@njit(cache=True)
def _dense_weights(P, th, b):
    """``b_s = Σ_q P[s, q] θ^(q+1)``: the dense output is ``y0 + h Σ_s b_s K_s``."""
    p1 = th
    p2 = th * th
    p3 = p2 * th
    p4 = p2 * p2
    for s in range(P.shape[0]):
        b[s] = P[s, 0] * p1 + P[s, 1] * p2 + P[s, 2] * p3 + P[s, 3] * p4


@njit(cache=True)
def _grow_rows(rec_t, rec_loss, rec_a, rec_w, rec_act, nrec):
    if nrec < rec_t.shape[0]:
        return rec_t, rec_loss, rec_a, rec_w, rec_act
    cap = 2 * rec_t.shape[0] + 16
    m = rec_a.shape[1]
    t2 = np.empty(cap)
    l2 = np.empty(cap)
    a2 = np.empty((cap, m))
    w2 = np.empty((cap, m))
    c2 = np.empty((cap, m), dtype=np.int64)
    t2[:nrec] = rec_t[:nrec]
    l2[:nrec] = rec_loss[:nrec]
    a2[:nrec] = rec_a[:nrec]
    w2[:nrec] = rec_w[:nrec]
    c2[:nrec] = rec_act[:nrec]
    return t2, l2, a2, w2, c2


@njit(cache=True)
def _row(
    t,
    el,
    sa,
    su,
    h,
    b,
    Ka,
    Ku,
    slot,
    idx,
    cnt,
    y,
    invD,
    lwps,
    ldsq,
    lb0,
    sb0,
    r,
    drift,
    rec_t,
    rec_loss,
    rec_a,
    rec_w,
    rec_act,
    nrec,
):
    """Write one trajectory row (t, loss, ln|a_j|, ‖w_j‖, n_active) at ``nrec``; return the drift.

    As the reference ``Recorder.add_scaled``: neuron ``j`` is ``e^{el_j}`` times
    ``(sa_j, su_j)``, or, with ``h > 0``, times the step's dense output from there,
    ``(sa, su) + h Σ_s b_s K_s`` (stage ``s`` in slot ``slot[s]``; formed on the fly,
    coordinate by coordinate); ``‖ŵ_j‖² = e^{lwps_j − 2 el_j} + e^{ldsq_j − 2 el_j} + Σ_k su_jk² / ‖x‖²``
    and the drift is ``max_j e^{2 el_j} |â² − ‖ŵ‖² − b̂0_j| / max_j e^{2 el_j}(â² + ‖ŵ‖²)``
    with ``b̂0_j = sb0_j e^{lb0_j − 2 el_j}`` the initial balance in the same units.
    """
    m = sa.shape[0]
    n = y.shape[0]
    for i in range(n):
        r[i] = 0.0
    top_dev = -np.inf
    top_size = -np.inf
    dense = h > 0
    for j in range(m):
        aj = sa[j]
        if dense:
            acc = 0.0
            for s in range(7):
                acc += b[s] * Ka[slot[s], j]
            aj = aj + h * acc
        e2 = 2.0 * el[j]
        wj = _ex(e2)
        q = 0.0
        for k in range(cnt[j]):
            i = idx[j, k]
            v = su[j, k]
            if dense:
                acc = 0.0
                for s in range(7):
                    acc += b[s] * Ku[slot[s], j, k]
                v = v + h * acc
            r[i] += (wj * aj) * v
            q += v * v * invD[i]
        ws = (_ex(lwps[j] - e2) + _ex(ldsq[j] - e2)) + q
        rec_a[nrec, j] = el[j] + math.log(abs(aj)) if aj != 0 else -np.inf
        rec_w[nrec, j] = _ex(el[j]) * math.sqrt(max(ws, 0.0))
        rec_act[nrec, j] = cnt[j]
        if el[j] > -np.inf:
            dev = abs(aj * aj - ws - sb0[j] * _ex(lb0[j] - e2))
            size = aj * aj + ws
            if dev > 0:
                top_dev = max(top_dev, e2 + math.log(dev))
            if size > 0:
                top_size = max(top_size, e2 + math.log(size))
    if top_size > -np.inf and top_dev > -np.inf:
        drift = max(drift, math.exp(top_dev - top_size))
    ss = 0.0
    for i in range(n):
        ri = r[i] - y[i]
        ss += ri * ri
    rec_t[nrec] = t
    rec_loss[nrec] = ss / (2 * n)
    return drift


@njit(cache=True)
def _grow_kinks(kink_t, kink_j, kink_i, need):
    if need <= kink_t.shape[0]:
        return kink_t, kink_j, kink_i
    cap = max(need, 2 * kink_t.shape[0] + 16)
    t2 = np.empty(cap)
    j2 = np.empty(cap, dtype=np.int64)
    i2 = np.empty(cap, dtype=np.int64)
    nk = kink_t.shape[0]
    t2[:nk] = kink_t
    j2[:nk] = kink_j
    i2[:nk] = kink_i
    return t2, j2, i2


@njit(cache=True)
def _poly(u0, h, q0, q1, q2, q3, th):
    th2 = th * th
    return u0 + h * (q0 * th + q1 * th2 + q2 * (th2 * th) + q3 * (th2 * th2))


@njit(cache=True)
def _locate(cj, ck, nc, uc, h, sc0, rtol, atl, Q, lo, hi, hitpos, flip):
    """First crossing of 0 on the dense output among the ``nc`` candidates (active coordinates).

    The reference ``_locate_kinks``: bracket the first crossing of each candidate
    on a grid of 16 points (a "hit" when there is one), bisect every hit jointly
    until the widest bracket is below 1e-15, θ* = the smallest crossing, and flip
    the hits crossing at θ* or whose value at θ* is negligible against their
    neuron's size. ``Q[c]`` holds candidate ``c``'s dense-output coefficients
    (``u(θ) = u0 + h Σ_q Q_q θ^(q+1)``). Two shortcuts give the same result with
    less work:

    * (done by the caller) a candidate whose dense output is provably positive on
      [0, 1] (``u0 + h Σ_q min(Q_q, 0) > 0`` with a margin far above rounding) has
      no grid point <= 0, so it is no hit and is not passed here;
    * brackets are exact dyadic intervals that halve exactly, so the joint loop
      runs a number of iterations fixed by the widest initial bracket, and a hit
      whose bracket starts at or after the smallest bracket end ``G`` ends with
      a crossing ``> G >= θ*``: only the hits with ``lo < G`` are bisected.

    Sets ``flip[c]`` and returns ``(θ*, number flipped)``; ``θ* = 1`` and nothing
    flipped when no candidate crosses within the step. ``atl``: ``atol`` per neuron
    (in its units).
    """
    nh = 0
    for c in range(nc):
        flip[c] = False
        q0, q1, q2, q3 = Q[c, 0], Q[c, 1], Q[c, 2], Q[c, 3]
        u0 = uc[cj[c], ck[c]]
        h_c = np.inf
        lo_c = 0.0
        prev = 0.0
        for gi in range(1, 17):
            g = gi / 16.0
            if _poly(u0, h, q0, q1, q2, q3, g) <= 0:
                h_c = g
                lo_c = prev
                break
            prev = g
        if u0 == 0:
            lo_c = 0.0
        if h_c < np.inf:
            hitpos[nh] = c
            lo[nh] = lo_c
            hi[nh] = h_c
            nh += 1
    if nh == 0:
        return 1.0, 0
    G = np.inf
    W = 0.0
    for p in range(nh):
        G = min(G, hi[p])
        W = max(W, hi[p] - lo[p])
    niter = 0
    for _ in range(52):
        niter += 1
        W *= 0.5
        if W < 1e-15:
            break
    th_star = np.inf
    for p in range(nh):
        if lo[p] < G:
            c = hitpos[p]
            u0 = uc[cj[c], ck[c]]
            q0, q1, q2, q3 = Q[c, 0], Q[c, 1], Q[c, 2], Q[c, 3]
            l = lo[p]
            u = hi[p]
            for _ in range(niter):
                mid = 0.5 * (l + u)
                if _poly(u0, h, q0, q1, q2, q3, mid) > 0:
                    l = mid
                else:
                    u = mid
            hi[p] = u
            th_star = min(th_star, u)
        else:
            hi[p] = np.inf  # its crossing is > G >= θ*
    nflip = 0
    for p in range(nh):
        c = hitpos[p]
        j = cj[c]
        v = _poly(uc[j, ck[c]], h, Q[c, 0], Q[c, 1], Q[c, 2], Q[c, 3], th_star)
        if hi[p] <= th_star or v <= 1e-3 * (atl[j] + rtol * sc0[j]):
            flip[c] = True
            nflip += 1
    return th_star, nflip


@njit(cache=True)
def _finish_residual(r, y, D, inv_n, rw, g):
    """``r ← r − y``; ``rw = r / n``; ``g = rw ‖x‖²``; reset ``r`` to 0; return ``Σ r_i²``."""
    ss = 0.0
    for i in range(r.shape[0]):
        ri = r[i] - y[i]
        ss += ri * ri
        w = ri * inv_n
        rw[i] = w
        g[i] = w * D[i]
        r[i] = 0.0
    return ss


@njit(cache=True)
def _stage_pass(s, h, A, B, a, U, SU, sa, idx, cnt, rw, g, r, Ka, Ku, slot, gr, Wn):
    """Field at stage ``s`` (state in ``sa, SU``, residual done) fused with the next state.

    Writes ``K_s = F − gr x`` (growth frame ``gr``), then overwrites ``sa, SU`` with
    the state of stage ``s + 1`` (``y0 + Σ_q A[s+1, q] h K_q``; for ``s = 5`` the
    solution ``y0 + h Σ_q B_q K_q``) and scatters its residual, each neuron weighed
    by ``Wn`` (``e^{2ℓ}`` at that stage), into ``r`` (which must be 0 on entry).
    """
    m = a.shape[0]
    K0 = Ku[slot[0]]
    K1 = Ku[slot[1]]
    K2 = Ku[slot[2]]
    K3 = Ku[slot[3]]
    K4 = Ku[slot[4]]
    Ks = Ku[slot[s]]
    if s < 5:
        c0 = A[s + 1, 0] * h
        c1 = A[s + 1, 1] * h
        c2 = A[s + 1, 2] * h
        c3 = A[s + 1, 3] * h
        c4 = A[s + 1, 4] * h
    else:
        c0, c1, c2, c3, c4 = B[0], B[1], B[2], B[3], B[4]
    c5 = B[5]
    for j in range(m):
        naj = -sa[j]
        gj = gr[j]
        acc = 0.0
        nk = cnt[j]
        if s == 1:
            for k in range(nk):
                i = idx[j, k]
                x = SU[j, k]
                acc += x * rw[i]
                d = naj * g[i] - gj * x
                Ks[j, k] = d
                SU[j, k] = (c0 * K0[j, k] + c1 * d) + U[j, k]
        elif s == 2:
            for k in range(nk):
                i = idx[j, k]
                x = SU[j, k]
                acc += x * rw[i]
                d = naj * g[i] - gj * x
                Ks[j, k] = d
                SU[j, k] = (c0 * K0[j, k] + c1 * K1[j, k] + c2 * d) + U[j, k]
        elif s == 3:
            for k in range(nk):
                i = idx[j, k]
                x = SU[j, k]
                acc += x * rw[i]
                d = naj * g[i] - gj * x
                Ks[j, k] = d
                SU[j, k] = (c0 * K0[j, k] + c1 * K1[j, k] + c2 * K2[j, k] + c3 * d) + U[j, k]
        elif s == 4:
            for k in range(nk):
                i = idx[j, k]
                x = SU[j, k]
                acc += x * rw[i]
                d = naj * g[i] - gj * x
                Ks[j, k] = d
                SU[j, k] = (
                    c0 * K0[j, k] + c1 * K1[j, k] + c2 * K2[j, k] + c3 * K3[j, k] + c4 * d
                ) + U[j, k]
        else:
            for k in range(nk):
                i = idx[j, k]
                x = SU[j, k]
                acc += x * rw[i]
                d = naj * g[i] - gj * x
                Ks[j, k] = d
                SU[j, k] = U[j, k] + h * (
                    c0 * K0[j, k]
                    + c1 * K1[j, k]
                    + c2 * K2[j, k]
                    + c3 * K3[j, k]
                    + c4 * K4[j, k]
                    + c5 * d
                )
        da = -acc - gj * sa[j]
        Ka[slot[s], j] = da
        if s == 1:
            aj = (c0 * Ka[slot[0], j] + c1 * da) + a[j]
        elif s == 2:
            aj = (c0 * Ka[slot[0], j] + c1 * Ka[slot[1], j] + c2 * da) + a[j]
        elif s == 3:
            aj = (c0 * Ka[slot[0], j] + c1 * Ka[slot[1], j] + c2 * Ka[slot[2], j] + c3 * da) + a[j]
        elif s == 4:
            aj = (
                c0 * Ka[slot[0], j]
                + c1 * Ka[slot[1], j]
                + c2 * Ka[slot[2], j]
                + c3 * Ka[slot[3], j]
                + c4 * da
            ) + a[j]
        else:
            aj = a[j] + h * (
                c0 * Ka[slot[0], j]
                + c1 * Ka[slot[1], j]
                + c2 * Ka[slot[2], j]
                + c3 * Ka[slot[3], j]
                + c4 * Ka[slot[4], j]
                + c5 * da
            )
        sa[j] = aj
        wa = Wn[j] * aj
        for k in range(nk):
            r[idx[j, k]] += wa * SU[j, k]


@njit(cache=True, inline="always")
def _numbers(j, aj, kaj, gj, SU, KU, idx, cnt, invb):
    """Neuron ``j``'s numbers for :func:`_settle` and :func:`_plateau_ready` at the state
    ``(aj, SU[j])`` with ``K = (kaj, KU[j]) = F − gj x``: the Rayleigh quotient of the true
    field ``F = K + gj x`` (numerator, denominator), its speed ``max|F_j|`` and
    ``max_i σ(û_ji)/bound_i`` (the order of the sums is that of the reference loop)."""
    va = kaj + gj * aj
    num = aj * va
    den = aj * aj
    sp = abs(va)
    cp = 0.0
    for k in range(cnt[j]):
        x = SU[j, k]
        vu = KU[j, k] + gj * x
        num += x * vu
        den += x * x
        sp = max(sp, abs(vu))
        if x > 0:
            cp = max(cp, x * invb[idx[j, k]])
    return num, den, sp, cp


@njit(cache=True)
def _velocity_pass(sa, SU, idx, cnt, rw, g, KA, KU, gr, invb, sact, rnum, rden, spd, cpos):
    """Field at ``(sa, SU)`` (residual done) into ``KA, KU``, minus ``gr x``, and the
    per-neuron numbers of :func:`_settle` (see :func:`run`)."""
    for j in range(sa.shape[0]):
        naj = -sa[j]
        gj = gr[j]
        acc = 0.0
        s1 = abs(sa[j])
        for k in range(cnt[j]):
            i = idx[j, k]
            x = SU[j, k]
            acc += x * rw[i]
            KU[j, k] = naj * g[i] - gj * x
            s1 = max(s1, abs(x))
        KA[j] = -acc - gj * sa[j]
        sact[j] = s1
        rnum[j], rden[j], spd[j], cpos[j] = _numbers(j, sa[j], KA[j], gj, SU, KU, idx, cnt, invb)


@njit(cache=True)
def _settle(
    ell, gr, a, U, cnt, KA, KU, ldmax, sc0, sact, rnum, rden, spd0, cpos, spd_pl, log_gf
):
    """After a step: power-of-two renormalisation, then the growth frame of the next step.

    As ``reluflow.flow._renormalise_rows`` and ``_retune_rows``, from the per-neuron
    numbers the last field evaluation formed (:func:`_numbers`; ``sact = max(|â|,
    max|û|)`` over the active coordinates): a neuron whose size ``max(sact, inactive
    part)`` left [1/4, 4] is scaled by ``2^−e`` (``ℓ += e ln 2``; exact, its numbers
    scale with it); ``g_j`` becomes the Rayleigh quotient for the neurons below
    ``e^{log_gf}`` of the largest, 0 for the others, and ``K_0 = F − g x`` (rewritten
    where ``g_j`` or its previous value is not 0). Sets ``sc0`` (sizes), ``spd0``
    (true speeds) and ``spd_pl`` (the same, formed from the new ``K_0``, for
    :func:`_plateau_ready`).
    """
    m = a.shape[0]
    top = -np.inf
    for j in range(m):
        size = max(sact[j], _ex(ldmax[j] - ell[j]))
        if size > 4.0 or (size < 0.25 and size > 0):
            e = math.frexp(size)[1] - 1
            fac = math.ldexp(1.0, -e)
            a[j] *= fac
            KA[j] *= fac
            for k in range(cnt[j]):
                U[j, k] *= fac
                KU[j, k] *= fac
            ell[j] += e * _LN2
            sact[j] *= fac
            spd0[j] *= fac
            cpos[j] *= fac
            size = max(sact[j], _ex(ldmax[j] - ell[j]))
        sc0[j] = size
        if size > 0:
            top = max(top, ell[j] + math.log(size))
    for j in range(m):
        size = sc0[j]
        small = size > 0 and ell[j] + math.log(size) <= top + log_gf
        if size == 0:
            small = 0.0 <= top + log_gf  # ln 0 = −inf <= anything
        gn = rnum[j] / rden[j] if (small and rden[j] > 0) else 0.0
        gj = gr[j]
        if gj == 0 and gn == 0:
            spd_pl[j] = spd0[j]  # K_0 = F already
            continue
        va = KA[j] + gj * a[j]
        KA[j] = va - gn * a[j]
        sp = abs(KA[j] + gn * a[j])
        for k in range(cnt[j]):
            x = U[j, k]
            KU[j, k] = (KU[j, k] + gj * x) - gn * x
            sp = max(sp, abs(KU[j, k] + gn * x))
        spd_pl[j] = sp
        gr[j] = gn


@njit(cache=True)
def _stage_weights(ell, gr, C, h, W):
    """``W[s, j] = e^{2(ℓ_j + g_j c_s h)}`` for the seven stages (``c_6 = 1``)."""
    for s in range(7):
        cs = C[s] if s < 6 else 1.0
        for j in range(ell.shape[0]):
            W[s, j] = _ex(2.0 * (ell[j] + gr[j] * (cs * h)))


@njit(cache=True)
def _activations(act_t, t, h, th_end, ell, gr, a, Ka, slot, P, log_level, b):
    """Locate ``ln|a_j| = log_level`` on the step's dense output for the neurons not yet active.

    As ``reluflow.flow._locate_activations``: bracket on 16 points of ``[0, θ_end]``,
    bisect to 1e-15 of the step.
    """
    m = a.shape[0]
    for j in range(m):
        if act_t[j] == act_t[j]:
            continue
        _dense_weights(P, th_end, b)
        acc = 0.0
        for s in range(7):
            acc += b[s] * Ka[slot[s], j]
        ae = a[j] + h * acc
        if ae == 0 or ell[j] + gr[j] * (th_end * h) + math.log(abs(ae)) < log_level:
            continue
        lo = 0.0
        hi = th_end
        for gi in range(1, 17):
            th = th_end * gi / 16.0
            _dense_weights(P, th, b)
            acc = 0.0
            for s in range(7):
                acc += b[s] * Ka[slot[s], j]
            aj = a[j] + h * acc
            if aj != 0 and ell[j] + gr[j] * th * h + math.log(abs(aj)) - log_level >= 0:
                hi = th
                break
            lo = th
        for _ in range(60):
            if hi - lo <= 1e-15:
                break
            mid = 0.5 * (lo + hi)
            _dense_weights(P, mid, b)
            acc = 0.0
            for s in range(7):
                acc += b[s] * Ka[slot[s], j]
            aj = a[j] + h * acc
            if aj != 0 and ell[j] + gr[j] * mid * h + math.log(abs(aj)) - log_level >= 0:
                hi = mid
            else:
                lo = mid
        act_t[j] = t + hi * h


@njit(cache=True)
def _plateau_ready(ell, a, cpos, spd, sc0, eps, rest_tol):
    """``reluflow._plateau.plateau_ready``: some neuron small, every other at rest.

    From the numbers of :func:`_settle` (``cpos``: ``max_i σ(û_ji)/bound_i``; ``spd``:
    the speed ``max|F_j|``; ``sc0``: the size).
    """
    any_small = False
    for j in range(a.shape[0]):
        if cpos[j] * (_ex(2.0 * ell[j]) * abs(a[j])) <= eps:
            any_small = True
        elif not (spd[j] <= rest_tol * sc0[j]):
            return False
    return any_small


@njit(cache=True)
def run(
    A,
    B,
    C,
    E,
    P,
    y,
    D,
    lwps,
    ldmax,
    ldsq,
    lb0,
    sb0,
    ell,
    gr,
    a,
    uc,
    idx,
    cnt,
    Ka,
    Ku,
    sc0,
    act_t,
    fs,
    ist,
    t_end,
    max_steps,
    step_limit,
    rtol,
    atol,
    loss_tol,
    stall_rate,
    rate_unit,
    grid_ratio,
    record_kinks,
    log_level,
    log_gf,
    check_plateau,
    invb,
    eps_out,
    rest_tol,
    skip_after,
    rec_t,
    rec_loss,
    rec_a,
    rec_w,
    rec_act,
    kink_t,
    kink_j,
    kink_i,
):
    """Integrate until a stopping rule, a plateau to cross, or ``step_limit`` accepted steps.

    On entry and exit the state is ``(ℓ, a, uc)`` (neuron ``j`` is ``e^{ℓ_j}`` times
    ``a_j`` and its active coordinates ``uc[j, :cnt[j]]``, sample indices in ``idx``),
    ``gr`` the growth frame of the next step, ``Ka[0], Ku[0]`` the projected field
    ``F − g x`` there and ``sc0`` the neuron sizes. Returns ``(code, rec_t, rec_loss,
    rec_a, rec_w, rec_act, kink_t, kink_j, kink_i)`` (the buffers are reallocated when
    they grow); ``rec_a`` holds ``ln |a_j|``.
    """
    m = a.shape[0]
    n = y.shape[0]
    inv_n = 1.0 / n
    invD = 1.0 / D
    r = np.zeros(n)
    rw = np.empty(n)
    g = np.empty(n)
    rr = np.empty(n)  # work array of _row
    X = np.empty((2, m, n))  # X[cur]: the state; X[1 - cur]: stage states, then the next state
    cur = 0
    for j in range(m):
        for k in range(cnt[j]):
            X[0, j, k] = uc[j, k]
    slot = np.arange(7)  # stage s lives in Ka[slot[s]], Ku[slot[s]]
    sa = np.empty(m)
    gl = np.empty(m)  # log-scales at a grid point
    # per neuron at the state after a step (formed by its last field evaluation): the
    # size over a and the active coordinates, the Rayleigh quotient of the true field
    # (numerator, denominator), its speed and the largest output relative to its bound
    sact = np.empty(m)
    rnum = np.empty(m)
    rden = np.empty(m)
    spd0 = np.empty(m)
    spd_pl = np.empty(m)
    cpos = np.empty(m)
    atl = np.empty(m)
    W = np.empty((7, m))
    b = np.empty(7)
    ncap = max(1, cnt.sum())  # kink candidates are active coordinates, never more
    cj = np.empty(ncap, dtype=np.int64)
    ck = np.empty(ncap, dtype=np.int64)
    flip = np.zeros(ncap, dtype=np.bool_)
    mark = np.zeros((m, n), dtype=np.bool_)
    Qc = np.empty((ncap, 4))
    lo = np.empty(ncap)
    hi = np.empty(ncap)
    hitpos = np.empty(ncap, dtype=np.int64)

    t = fs[F_T]
    h = fs[F_H]
    next_t = fs[F_NEXT]
    drift = fs[F_DRIFT]
    loss = fs[F_LOSS]
    nrec = ist[I_NREC]
    nkink = ist[I_NKINK]
    code = RUNNING
    done_here = 0
    fails = 0
    while True:
        if t >= t_end:
            code = T_MAX
            break
        if ist[I_STEPS] >= max_steps:
            code = MAX_STEPS
            break
        if done_here >= step_limit:
            break
        h = min(h, t_end - t)
        for j in range(m):
            atl[j] = atol * _ex(-ell[j]) if atol > 0 else 0.0
            if atol > 0 and ell[j] < -700:
                atl[j] = np.inf
        _stage_weights(ell, gr, C, h, W)
        U = X[cur]
        SU = X[1 - cur]
        # ---- one Dormand-Prince trial step with the mask frozen
        K0 = Ku[slot[0]]
        c10 = A[1, 0] * h
        for j in range(m):
            aj = (c10 * Ka[slot[0], j]) + a[j]
            sa[j] = aj
            wa = W[1, j] * aj
            for k in range(cnt[j]):
                v = (c10 * K0[j, k]) + U[j, k]
                SU[j, k] = v
                r[idx[j, k]] += wa * v
        for s in range(1, 6):
            _finish_residual(r, y, D, inv_n, rw, g)
            _stage_pass(s, h, A, B, a, U, SU, sa, idx, cnt, rw, g, r, Ka, Ku, slot, gr, W[s + 1])
        # stage 7 at the solution, fused with the error norm and the kink candidates
        ss = _finish_residual(r, y, D, inv_n, rw, g)
        loss6 = ss / (2 * n)
        ist[I_EVALS] += 6
        K1 = Ku[slot[1]]
        K2 = Ku[slot[2]]
        K3 = Ku[slot[3]]
        K4 = Ku[slot[4]]
        K5 = Ku[slot[5]]
        K6 = Ku[slot[6]]
        e0, e1, e2, e3, e4, e5, e6 = E[0], E[1], E[2], E[3], E[4], E[5], E[6]
        ratio = 0.0
        nc = 0
        for j in range(m):
            naj = -sa[j]
            gj = gr[j]
            acc = 0.0
            s1 = abs(sa[j])
            e = 0.0
            for k in range(cnt[j]):
                i = idx[j, k]
                vu = SU[j, k]
                acc += vu * rw[i]
                d = naj * g[i] - gj * vu
                K6[j, k] = d
                s1 = _nmax(s1, abs(vu))
                k0 = K0[j, k]
                k1 = K1[j, k]
                k2 = K2[j, k]
                k3 = K3[j, k]
                k4 = K4[j, k]
                k5 = K5[j, k]
                ek = h * (e0 * k0 + e1 * k1 + e2 * k2 + e3 * k3 + e4 * k4 + e5 * k5 + e6 * d)
                e = _nmax(e, abs(ek))
                u0 = U[j, k]
                if vu <= 0 or min(u0, vu) < 0.5 * h * abs(k0):
                    # a kink candidate: dense-output coefficients Q = Kᵀ P, kept unless
                    # provably positive on the whole step (then it cannot be a hit)
                    q0 = (
                        k0 * P[0, 0] + k1 * P[1, 0] + k2 * P[2, 0] + k3 * P[3, 0]
                        + k4 * P[4, 0] + k5 * P[5, 0] + d * P[6, 0]
                    )
                    q1 = (
                        k0 * P[0, 1] + k1 * P[1, 1] + k2 * P[2, 1] + k3 * P[3, 1]
                        + k4 * P[4, 1] + k5 * P[5, 1] + d * P[6, 1]
                    )
                    q2 = (
                        k0 * P[0, 2] + k1 * P[1, 2] + k2 * P[2, 2] + k3 * P[3, 2]
                        + k4 * P[4, 2] + k5 * P[5, 2] + d * P[6, 2]
                    )
                    q3 = (
                        k0 * P[0, 3] + k1 * P[1, 3] + k2 * P[2, 3] + k3 * P[3, 3]
                        + k4 * P[4, 3] + k5 * P[5, 3] + d * P[6, 3]
                    )
                    low = u0 + h * (min(q0, 0.0) + min(q1, 0.0) + min(q2, 0.0) + min(q3, 0.0))
                    mag = abs(u0) + h * (abs(q0) + abs(q1) + abs(q2) + abs(q3))
                    if not (low > 1e-12 * mag):
                        cj[nc] = j
                        ck[nc] = k
                        Qc[nc, 0] = q0
                        Qc[nc, 1] = q1
                        Qc[nc, 2] = q2
                        Qc[nc, 3] = q3
                        nc += 1
            da = -acc - gj * sa[j]
            Ka[slot[6], j] = da
            ea = h * (
                e0 * Ka[slot[0], j]
                + e1 * Ka[slot[1], j]
                + e2 * Ka[slot[2], j]
                + e3 * Ka[slot[3], j]
                + e4 * Ka[slot[4], j]
                + e5 * Ka[slot[5], j]
                + e6 * da
            )
            e = _nmax(abs(ea), e)
            sact[j] = s1
            # (cache-hot: the row was just written)
            rnum[j], rden[j], spd0[j], cpos[j] = _numbers(j, sa[j], da, gj, SU, K6, idx, cnt, invb)
            s1 = _nmax(s1, _ex(ldmax[j] - (ell[j] + gj * h)))
            sc = _nmax(atl[j] + rtol * _nmax(sc0[j], s1), 1e-300)
            ratio = _nmax(ratio, e / sc)
        if not np.isfinite(ratio):
            # a trial step so long that a log-scale overflowed in a stage: shorter
            fails += 1
            if fails > _MAX_FAILS or h < 1e-14 * max(t, 1.0):
                code = NONFINITE
                break
            ist[I_REJ] += 1
            h *= 0.2
            continue
        fails = 0
        if ratio > 1.0:
            ist[I_REJ] += 1
            h *= max(0.2, 0.9 * ratio**-0.2)
            if h < 1e-14 * max(t, 1.0):
                code = UNDERFLOW
                break
            continue
        # ---- accepted: kinks inside the step
        theta_star = 1.0
        nflip = 0
        if nc > 0:
            theta_star, nflip = _locate(cj, ck, nc, U, h, sc0, rtol, atl, Qc, lo, hi, hitpos, flip)
        t_next = t + theta_star * h
        _activations(act_t, t, h, theta_star, ell, gr, a, Ka, slot, P, log_level, b)
        t_hi = min(t_next, t_end)
        npts = 0
        last_pt = 0.0
        while next_t <= t_hi:
            if next_t > t:
                _dense_weights(P, (next_t - t) / h, b)
                for j in range(m):
                    gl[j] = ell[j] + gr[j] * (next_t - t)
                rec_t, rec_loss, rec_a, rec_w, rec_act = _grow_rows(
                    rec_t, rec_loss, rec_a, rec_w, rec_act, nrec
                )
                drift = _row(
                    next_t, gl, a, U, h, b, Ka, Ku, slot, idx, cnt, y, invD, lwps, ldsq, lb0,
                    sb0, rr, drift, rec_t, rec_loss, rec_a, rec_w, rec_act, nrec,
                )
                nrec += 1
                npts += 1
                last_pt = next_t
            next_t *= grid_ratio
        ist[I_STEPS] += 1
        done_here += 1
        h_prop = h * min(5.0, max(0.2, 0.9 * max(ratio, 1e-10) ** -0.2))
        event = nflip > 0
        if event:
            ist[I_KINKS] += nflip
            ist[I_KSTEPS] += 1
            t = t_next
            kink_t, kink_j, kink_i = _grow_kinks(kink_t, kink_j, kink_i, nkink + nflip)
            for c in range(nc):
                if flip[c]:
                    mark[cj[c], ck[c]] = True
            # the state at θ* (dense output), flipped coordinates recorded, set to 0 and
            # dropped from the active lists (in (neuron, sample) order), residual scattered
            _dense_weights(P, theta_star, b)
            b0, b1, b2, b3, b4, b5, b6 = b[0], b[1], b[2], b[3], b[4], b[5], b[6]
            for j in range(m):
                acca = (
                    b0 * Ka[slot[0], j]
                    + b1 * Ka[slot[1], j]
                    + b2 * Ka[slot[2], j]
                    + b3 * Ka[slot[3], j]
                    + b4 * Ka[slot[4], j]
                    + b5 * Ka[slot[5], j]
                    + b6 * Ka[slot[6], j]
                )
                aj = a[j] + h * acca
                a[j] = aj
                ell[j] = ell[j] + gr[j] * (theta_star * h)
                wa = _ex(2.0 * ell[j]) * aj
                w = 0
                for k in range(cnt[j]):
                    i = idx[j, k]
                    if mark[j, k]:
                        mark[j, k] = False
                        kink_t[nkink] = t
                        kink_j[nkink] = j
                        kink_i[nkink] = i
                        nkink += 1
                        continue
                    v = U[j, k] + h * (
                        b0 * K0[j, k]
                        + b1 * K1[j, k]
                        + b2 * K2[j, k]
                        + b3 * K3[j, k]
                        + b4 * K4[j, k]
                        + b5 * K5[j, k]
                        + b6 * K6[j, k]
                    )
                    SU[j, w] = v
                    idx[j, w] = i
                    w += 1
                    r[i] += wa * v
                cnt[j] = w
            cur = 1 - cur
            U = X[cur]
            ss = _finish_residual(r, y, D, inv_n, rw, g)
            loss = ss / (2 * n)
            _velocity_pass(
                a, U, idx, cnt, rw, g, Ka[slot[0]], Ku[slot[0]], gr, invb, sact, rnum, rden,
                spd0, cpos,
            )  # fmt: skip
            ist[I_EVALS] += 1
            if record_kinks and (npts == 0 or last_pt < t):
                rec_t, rec_loss, rec_a, rec_w, rec_act = _grow_rows(
                    rec_t, rec_loss, rec_a, rec_w, rec_act, nrec
                )
                drift = _row(
                    t, ell, a, U, 0.0, b, Ka, Ku, slot, idx, cnt, y, invD, lwps, ldsq, lb0,
                    sb0, rr, drift, rec_t, rec_loss, rec_a, rec_w, rec_act, nrec,
                )
                nrec += 1
            h = max(h_prop, h * (1.0 - theta_star)) if theta_star < 1 else h_prop
        else:
            for j in range(m):
                a[j] = sa[j]
                ell[j] = ell[j] + gr[j] * h
            cur = 1 - cur
            s0 = slot[0]
            slot[0] = slot[6]
            slot[6] = s0
            loss = loss6
            t = t + h
            h = h_prop
        U = X[cur]
        _settle(
            ell, gr, a, U, cnt, Ka[slot[0]], Ku[slot[0]], ldmax, sc0, sact, rnum, rden, spd0,
            cpos, spd_pl, log_gf,
        )  # fmt: skip
        if loss <= loss_tol:
            code = LOSS_TOL
            break
        # stall (as reluflow._dynamics.StallWatch): every live neuron's speed below
        # stall_rate x its size, and |grad L|^2 small or the loss still while t doubled
        stalled = True
        for j in range(m):
            if sc0[j] > 0 and not (spd0[j] <= stall_rate * sc0[j]):
                stalled = False
                break
        if not stalled:
            fs[F_MARK_T] = -1.0
        else:
            sp = 0.0
            KA0 = Ka[slot[0]]
            KU0 = Ku[slot[0]]
            for j in range(m):
                gj = gr[j]
                va = KA0[j] + gj * a[j]
                qq = va * va
                for k in range(cnt[j]):
                    v = KU0[j, k] + gj * U[j, k]
                    qq += v * v * invD[idx[j, k]]
                sp += _ex(2.0 * ell[j]) * qq
            if sp <= loss_tol * rate_unit:
                code = STALLED
                break
            if fs[F_MARK_T] < 0:
                fs[F_MARK_T] = t
                fs[F_MARK_LOSS] = loss
            elif t > fs[F_MARK_T] and t >= 2 * fs[F_MARK_T] and fs[F_MARK_LOSS] - loss <= loss_tol:
                code = STALLED
                break
        skip = max(ist[I_SKIP] - 1, 0)
        ist[I_SKIP] = skip
        if check_plateau and not event and skip == 0:
            if _plateau_ready(ell, a, cpos, spd_pl, sc0, eps_out, rest_tol):
                code = PLATEAU
                break

    U = X[cur]
    for j in range(m):
        for k in range(cnt[j]):
            uc[j, k] = U[j, k]
    if slot[0] != 0:
        for j in range(m):
            Ka[0, j] = Ka[slot[0], j]
            for k in range(cnt[j]):
                Ku[0, j, k] = Ku[slot[0], j, k]
    if code != RUNNING and code != PLATEAU and rec_t[nrec - 1] < t:
        rec_t, rec_loss, rec_a, rec_w, rec_act = _grow_rows(
            rec_t, rec_loss, rec_a, rec_w, rec_act, nrec
        )
        drift = _row(
            t, ell, a, uc, 0.0, b, Ka, Ku, slot, idx, cnt, y, invD, lwps, ldsq, lb0, sb0, rr,
            drift, rec_t, rec_loss, rec_a, rec_w, rec_act, nrec,
        )
        nrec += 1
    fs[F_T] = t
    fs[F_H] = h
    fs[F_NEXT] = next_t
    fs[F_DRIFT] = drift
    fs[F_LOSS] = loss
    ist[I_NREC] = nrec
    ist[I_NKINK] = nkink
    return code, rec_t, rec_loss, rec_a, rec_w, rec_act, kink_t, kink_j, kink_i

"""Closed forms of docs/limit.md against brute force, Monte Carlo and their own invariants."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from reluflow.errors import InputError
from reluflow.theory import interpolation_probability, min_norm_sq, width_for_probability


def _enumerated_probability(n_pos: int, n_neg: int, m: int) -> float:
    """Exact P(every sample covered) by enumerating every sign pattern of the initialisation.

    Each neuron draws an output sign and one bit per sample (u_ji(0) > 0), all fair coins;
    sample i is covered iff some neuron has s_j = sign(y_i) and bit_ji = 1.
    """
    n = n_pos + n_neg
    label = [1] * n_pos + [-1] * n_neg
    per_neuron = list(itertools.product([1, -1], itertools.product([0, 1], repeat=n)))
    hits = 0
    for config in itertools.product(per_neuron, repeat=m):
        covered = all(any(s == label[i] and bits[i] for s, bits in config) for i in range(n))
        hits += covered
    return hits / len(per_neuron) ** m


@pytest.mark.parametrize(("n_pos", "n_neg", "m"), [(2, 1, 2), (2, 1, 3), (1, 1, 3), (3, 0, 2),
                                                    (0, 2, 3), (2, 2, 2)])
def test_probability_matches_enumeration(n_pos, n_neg, m):
    exact = _enumerated_probability(n_pos, n_neg, m)
    assert interpolation_probability(n_pos, n_neg, m) == pytest.approx(exact, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(("n_pos", "n_neg", "m"), [(20, 12, 8), (100, 100, 14), (5, 40, 10)])
def test_probability_matches_monte_carlo_of_coverage(n_pos, n_neg, m):
    rng = np.random.default_rng(12345)
    trials = 20000
    s = rng.integers(0, 2, size=(trials, m, 1)) * 2 - 1
    bits = rng.integers(0, 2, size=(trials, m, n_pos + n_neg)).astype(bool)
    y = np.array([1] * n_pos + [-1] * n_neg)
    covered = ((s == y[None, None, :]) & bits).any(axis=1).all(axis=1)
    p = interpolation_probability(n_pos, n_neg, m)
    se = math.sqrt(max(p * (1 - p), 1e-4) / trials)
    assert abs(covered.mean() - p) < 4 * se


def test_probability_is_monotone_in_width():
    for n_pos, n_neg in [(50, 50), (1000, 10), (0, 300), (10**6, 10**6)]:
        p = [interpolation_probability(n_pos, n_neg, m) for m in range(1, 120)]
        assert all(b >= a - 1e-15 for a, b in zip(p, p[1:], strict=False))
        assert 0.0 <= p[0] and p[-1] <= 1.0


def test_probability_stable_for_huge_n_and_m():
    for m in (1, 2, 60, 199, 200):
        p = interpolation_probability(10**9, 10**9, m)
        assert math.isfinite(p) and 0.0 <= p <= 1.0
    # m = 200 >> 2 log2(2e9) ≈ 62: the failure probability is ~1e-21, so the result is 1 up
    # to the rounding of lgamma(201) ≈ 863 in the log-sum (a few ulps, measured 1.8e-15).
    assert interpolation_probability(10**9, 10**9, 200) == pytest.approx(1.0, abs=1e-13)
    # Near the threshold the value must be strictly inside (0, 1) and change with m.
    near = [interpolation_probability(10**9, 10**9, m) for m in (62, 66, 70)]
    assert 0.0 < near[0] < near[1] < near[2] < 1.0
    # Against the same sum in 60-digit arithmetic (mpmath), where (1 - 2^-k)^n is evaluated
    # directly, not through log1p: no shared formula or rounding with the code under test.
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(60):
        for m, n_pos, n_neg in [(64, 10**9, 10**9), (70, 10**9, 10**9), (40, 10**9, 3), (90, 10**12, 10**12)]:
            exact = mpmath.fsum(
                mpmath.binomial(m, k) / mpmath.mpf(2) ** m
                * (1 - mpmath.mpf(2) ** -k) ** n_pos
                * (1 - mpmath.mpf(2) ** -(m - k)) ** n_neg
                for k in range(m + 1)
            )
            assert interpolation_probability(n_pos, n_neg, m) == pytest.approx(float(exact), rel=1e-12)


@pytest.mark.parametrize(("n_pos", "n_neg", "m"), [(50, 50, 12), (1000, 1000, 24), (700, 3, 17), (0, 40, 9)])
def test_probability_equals_the_exact_rational_sum(n_pos, n_neg, m):
    """At moderate n the probability is a rational number: compute it exactly (fractions)."""
    from fractions import Fraction

    exact = sum(
        Fraction(math.comb(m, k), 2**m)
        * (1 - Fraction(1, 2**k)) ** n_pos
        * (1 - Fraction(1, 2 ** (m - k))) ** n_neg
        for k in range(m + 1)
    )
    assert interpolation_probability(n_pos, n_neg, m) == pytest.approx(float(exact), rel=1e-13)


def test_edge_terms():
    # n = n_pos + n_neg = 0 is refused, as every dataset refuses n = 0
    with pytest.raises(InputError, match="n_pos \\+ n_neg must be >= 1"):
        interpolation_probability(0, 0, 1)
    with pytest.raises(InputError, match="n_pos \\+ n_neg must be >= 1"):
        width_for_probability(0, 0, 0.9)
    assert interpolation_probability(0, 1, 1) == 0.25  # one neuron: s = -1 and u > 0
    assert interpolation_probability(5, 0, 1) == pytest.approx(2.0**-6)  # s = +1 and 5 bits set
    assert interpolation_probability(1, 1, 1) == 0.0  # one neuron cannot cover both signs


def test_width_inverse_is_consistent():
    for n_pos, n_neg, p in [(500, 500, 0.5), (500, 500, 0.99), (10**6, 3, 0.9), (7, 0, 0.3)]:
        m = width_for_probability(n_pos, n_neg, p)
        assert interpolation_probability(n_pos, n_neg, m) >= p
        if m > 1:
            assert interpolation_probability(n_pos, n_neg, m - 1) < p
    assert width_for_probability(0, 1, 0.2) == 1  # P = 1/4 at m = 1
    # About 2 log2(n) for balanced labels (docs/limit.md).
    m = width_for_probability(10**6, 10**6, 0.5)
    assert abs(m - 2 * math.log2(2e6)) < 8


def test_min_norm_sq():
    y = np.array([1.0, -2.0, 3.0, 0.0])
    nrm = np.array([2.0, 1.0, 0.5, 7.0])
    expected = 2 * (math.sqrt(0.25 + 36.0) + math.sqrt(4.0))
    assert min_norm_sq(y, nrm) == pytest.approx(expected, rel=1e-15)
    assert min_norm_sq(np.ones(16), 1.0) == pytest.approx(8.0)


@pytest.mark.parametrize(("call", "words"), [
    (lambda: interpolation_probability(-1, 3, 4), "n_pos"),
    (lambda: interpolation_probability(3, 2.5, 4), "n_neg"),
    (lambda: interpolation_probability(3, 3, 0), "m"),
    (lambda: width_for_probability(3, 3, 1.0), "p"),
    (lambda: width_for_probability(3, 3, 0.0), "p"),
    (lambda: min_norm_sq([1.0, 2.0], [1.0, 0.0]), "x_norm"),
    (lambda: min_norm_sq([1.0, 2.0], [1.0]), "x_norm"),
])
def test_invalid_inputs_name_the_parameter(call, words):
    with pytest.raises(InputError, match=words):
        call()

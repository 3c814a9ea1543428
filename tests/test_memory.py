"""Memory estimates: they bound the measured peak (tracemalloc) without gross excess, and refuse."""

import tracemalloc

import pytest

import reluflow as rf
from reluflow import _memory


def _peak(f):
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        f()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_estimates_bound_the_measured_peaks():
    # first calls import modules and compile kernels: do them before measuring
    small = rf.orthogonal_data(20, seed=0)
    rf.gradient_flow(small, rf.init_network(small, 2, 1e-8, seed=0))
    rf.gradient_descent(small, rf.init_network(small, 2, 1e-8, seed=0), 1.0, steps=3)
    rf.jump_process(rf.orthogonal_data(16000, seed=0), 16, seed=1)  # has a tie
    n, m = 16000, 16
    data = rf.orthogonal_data(n, seed=0)
    data_f = rf.orthogonal_data(4000, seed=0)  # the dynamics: a smaller n, as fast
    net = rf.init_network(data_f, m, 1e-8, seed=0)
    lim = (_memory.LIMIT_PER_SAMPLE + _memory.LIMIT_PER_ENTRY * m) * n
    cases = {
        "data": (_peak(lambda: rf.orthogonal_data(n, seed=1)), _memory.DATA_PER_SAMPLE * n),
        "init": (
            _peak(lambda: rf.init_network(data, m, 1e-8, seed=1)),
            _memory.INIT_PER_ENTRY * n * m,
        ),
        "limit (a tie)": (_peak(lambda: rf.jump_process(data, m, seed=1)), lim),
        "limit": (_peak(lambda: rf.jump_process(data, m, seed=0)), lim),
        "flow": (_peak(lambda: rf.gradient_flow(data_f, net)), _memory.FLOW_PER_ENTRY * 4000 * m),
        "descent": (
            _peak(lambda: rf.gradient_descent(data_f, net, 1.0, steps=200, check_stability=False)),
            _memory.DESCENT_PER_ENTRY * 4000 * m,
        ),
    }
    for what, (measured, estimate) in cases.items():
        # an upper bound, but not a wild one (a refusal must not turn away sizes that fit)
        assert measured <= estimate <= 4 * measured, (what, measured, estimate)


def test_sizes_beyond_memory_are_input_errors_naming_what_fits():
    avail = _memory.available_bytes()
    if avail is None:
        pytest.skip("this platform does not report its available memory")
    n = 10**13  # 80 TB of labels alone
    with pytest.raises(
        rf.InputError, match=r"n = 10000000000000: the dataset needs about .* at most n = "
    ):
        rf.orthogonal_data(n)
    # the largest n named as fitting does fit the estimate, and a 2x larger one would not
    with pytest.raises(rf.InputError) as err:
        _memory.require("x", "n = 1", 1e6, per_n=1000.0, fixed=1e5, available=600_000)
    assert "at most n = 500 " in str(err.value)
    _memory.require("x", "n = 500", 1e5 + 1000.0 * 500, per_n=1000.0, fixed=1e5, available=600_000)


def test_each_stage_refuses_on_sizes_alone():
    # the checks need only the sizes, so they run before anything is allocated
    with pytest.raises(rf.InputError, match="the jump process needs about"):
        _memory.check_limit(10**12, 80)
    with pytest.raises(rf.InputError, match="the initial network needs about"):
        _memory.check_init(10**9, 10**4, 10**9, True)
    with pytest.raises(rf.InputError, match="gradient descent needs about"):
        _memory.check_dynamics("gradient descent", 10**9, 10**4, True)
    with pytest.raises(rf.InputError, match=r"the run needs about .* at m = 1000, d = 100000"):
        _memory.check_run("flow", 10**5, 1000, 10**5)

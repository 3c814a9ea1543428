"""Comparing two results stores (shared by the sweep and Dask tests)."""

from __future__ import annotations

import pandas as pd

from reluflow.store import ResultsStore

# columns that legitimately differ between two computations of the same runs
TIMES = ["wall_s", "created", "run_wall_s"]


def assert_same_results(path_a, path_b) -> None:
    """Two stores hold the same runs with bit-identical scalars and arrays."""
    with ResultsStore(path_a) as a, ResultsStore(path_b) as b:
        fa = a.frame().drop(columns=TIMES).sort_values("run_id").reset_index(drop=True)
        fb = b.frame().drop(columns=TIMES).sort_values("run_id").reset_index(drop=True)
        pd.testing.assert_frame_equal(fa, fb, check_exact=True)
        for rid in fa.run_id:
            xa, xb = a.arrays(rid), b.arrays(rid)
            assert xa.keys() == xb.keys()
            for k in xa:
                assert xa[k].dtype == xb[k].dtype and xa[k].tobytes() == xb[k].tobytes(), (rid, k)

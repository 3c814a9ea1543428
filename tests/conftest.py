import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def reproduce_smoke(tmp_path_factory):
    """One ``reluflow reproduce --scale smoke`` run, shared by the report tests (read only)."""
    from reluflow.reproduce import reproduce

    out = tmp_path_factory.mktemp("reproduce-smoke")
    return reproduce(out, "smoke", workers=2, progress=False)

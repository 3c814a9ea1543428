"""Seed semantics: one integer seed -> independent, named random streams.

Each consumer draws from its own stream, identified by a fixed spawn key, so
that the data, the initialisation and the minibatch order are reproducible
across runs and platforms (NumPy's PCG64 bit generator) and do not depend on
each other: changing the width ``m`` does not change the data, and the flow,
gradient descent and the jump process all see the same initialisation.
"""

from __future__ import annotations

import numpy as np

# Fixed spawn keys: never reorder, only append.
DATA_LABELS = (0, 0)
DATA_NORMS = (0, 1)
DATA_FRAME = (0, 2)
DATA_GAUSSIAN = (0, 3)
INIT_OUTPUT_SIGNS = (1, 0)
INIT_SIGN_BITS = (1, 1)
INIT_MAGNITUDES = (1, 2)
INIT_PERP_NORM = (1, 3)
INIT_A_MAGNITUDE = (1, 4)
INIT_PERP_DIRECTION = (1, 5)
INIT_ARRAY_GAUSSIAN = (1, 6)
SGD_BATCHES = (2, 0)
DATA_GRAM_FACTOR = (0, 4)
DATA_GRAM_FRAME = (0, 5)
INIT_GRAM_PERP_DIRECTION = (1, 7)


def stream(seed: int, key: tuple[int, ...]) -> np.random.Generator:
    """The generator of the named stream ``key`` under ``seed``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def sign_bits(seed: int, m: int, n: int) -> np.ndarray:
    """Boolean (m, n) array: True where the initial coordinate u_ji(0) is positive.

    Drawn as raw random bytes so that the jump process, which needs only the
    signs, can draw them for ``m * n`` in the hundreds of millions at memory speed.
    """
    nbytes = (m * n + 7) // 8
    raw = np.frombuffer(stream(seed, INIT_SIGN_BITS).bytes(nbytes), dtype=np.uint8)
    return np.unpackbits(raw, count=m * n).reshape(m, n).view(bool)


def standard_normals(seed: int, m: int, n: int) -> np.ndarray:
    """(m, n) standard Gaussian draws whose signs are :func:`sign_bits`.

    A Gaussian is a fair random sign times an independent |N(0, 1)|; drawing
    the two separately keeps the signs shared with the jump process.
    """
    out = stream(seed, INIT_MAGNITUDES).standard_normal((m, n))
    np.abs(out, out=out)  # in place: at m n ~ 10⁸ every fresh array costs seconds
    np.negative(out, out=out, where=~sign_bits(seed, m, n))
    return out


def output_signs(seed: int, m: int) -> np.ndarray:
    """The output signs s_j = +-1 of the m neurons."""
    return stream(seed, INIT_OUTPUT_SIGNS).integers(0, 2, size=m) * 2.0 - 1.0


# Streams of the field's generators and initialisations (reluflow.generators, reluflow.inits)
DATA_SPHERE = (4, 0)
DATA_SPHERE_NORMS = (4, 1)
DATA_SIGNED_LABELS = (4, 2)
DATA_TEACHER = (4, 3)
DATA_STANDARD_GAUSSIAN = (4, 4)
INIT_UNIFORM_W = (4, 5)
INIT_EXP_MARGIN = (4, 6)

"""Exceptions and warnings raised by reluflow.

Every error caused by user input is an :class:`InputError` (a ``ValueError``):
its message names the parameter, the value received and what is allowed. The
CLI turns it into exit code 2 without a traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """Invalid input: names the parameter, the value and what is allowed."""


class NotOrthogonalError(InputError):
    """Data given to an orthogonal-only method is not orthogonal.

    Attributes:
        coherence: the measured largest |cos| between two distinct samples.
    """

    def __init__(self, coherence: float, tolerance: float, what: str = "this method"):
        self.coherence = float(coherence)
        self.tolerance = float(tolerance)
        super().__init__(
            f"{what} needs orthogonal data, but the samples have coherence "
            f"{coherence:.3e} (largest |cos| between two distinct samples; allowed <= "
            f"{tolerance:.1e}). Simulate this data with the exact gradient flow instead "
            f"(reluflow.gradient_flow / `reluflow flow`), which handles any data."
        )


class StabilityWarning(UserWarning):
    """Gradient descent's step exceeds 2 / sharpness: descent may be unstable."""

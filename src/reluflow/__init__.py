"""reluflow: training dynamics and implicit bias of two-layer ReLU networks.

Exact gradient flow in reduced coordinates, gradient descent as its own
dynamics, the λ → 0 saddle-to-saddle jump process, and the analysis that
connects them. See docs/README.md for the mathematics.

Typical use::

    import reluflow as rf
    data = rf.orthogonal_data(200, seed=0)
    net = rf.init_network(data, m=16, scale=1e-8, seed=0)
    traj = rf.gradient_flow(data, net)
    rf.activation_events(traj)
    lim = rf.jump_process(data, 16, seed=0)
"""

from importlib import import_module as _import_module
from typing import TYPE_CHECKING

from ._version import __version__

# Public name -> the module that defines it. The modules are imported on first
# use (PEP 562), so that ``import reluflow`` (and ``reluflow --version``) stays
# instant and loads neither pandas, scipy, numba nor matplotlib until needed.
_WHERE = {
    "activation_events": "analysis",
    "plateaus": "analysis",
    "ArrayData": "data",
    "Dataset": "data",
    "GaussianGramData": "data",
    "OrthogonalData": "data",
    "array_data": "data",
    "gaussian_data": "data",
    "orthogonal_data": "data",
    "sphere_data": "generators",
    "teacher_data": "generators",
    "teacher_labels": "generators",
    "toy_1d_data": "generators",
    "with_bias": "generators",
    "gradient_descent": "descent",
    "sharpness": "descent",
    "InputError": "errors",
    "NotOrthogonalError": "errors",
    "StabilityWarning": "errors",
    "gradient_flow": "flow",
    "competitor_gaps": "gaps",
    "predicted_error": "gaps",
    "predicted_log_inv_scale": "gaps",
    "LimitResult": "limit",
    "Tie": "limit",
    "jump_process": "limit",
    "Network": "network",
    "init_network": "network",
    "load_init": "network",
    "save_init": "network",
    "interpolation_probability": "theory",
    "min_norm_sq": "theory",
    "width_for_probability": "theory",
    "SolverStats": "trajectory",
    "Trajectory": "trajectory",
    "coverage_depth": "width_law",
    "fit_width_law": "width_law",
    "halving_ratio": "width_law",
}

if TYPE_CHECKING:  # pragma: no cover - for static analysis and IDEs only
    from .analysis import activation_events, plateaus
    from .data import (
        ArrayData,
        Dataset,
        GaussianGramData,
        OrthogonalData,
        array_data,
        gaussian_data,
        orthogonal_data,
    )
    from .descent import gradient_descent, sharpness
    from .errors import InputError, NotOrthogonalError, StabilityWarning
    from .flow import gradient_flow
    from .gaps import competitor_gaps, predicted_error, predicted_log_inv_scale
    from .generators import sphere_data, teacher_data, teacher_labels, toy_1d_data, with_bias
    from .limit import LimitResult, Tie, jump_process
    from .network import Network, init_network, load_init, save_init
    from .theory import interpolation_probability, min_norm_sq, width_for_probability
    from .trajectory import SolverStats, Trajectory
    from .width_law import coverage_depth, fit_width_law, halving_ratio


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'reluflow' has no attribute {name!r}")
    value = getattr(_import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    "ArrayData",
    "Dataset",
    "GaussianGramData",
    "InputError",
    "LimitResult",
    "Network",
    "NotOrthogonalError",
    "OrthogonalData",
    "SolverStats",
    "StabilityWarning",
    "Tie",
    "Trajectory",
    "__version__",
    "activation_events",
    "array_data",
    "competitor_gaps",
    "coverage_depth",
    "fit_width_law",
    "gaussian_data",
    "gradient_descent",
    "gradient_flow",
    "halving_ratio",
    "init_network",
    "interpolation_probability",
    "jump_process",
    "load_init",
    "min_norm_sq",
    "orthogonal_data",
    "plateaus",
    "predicted_error",
    "predicted_log_inv_scale",
    "save_init",
    "sharpness",
    "sphere_data",
    "teacher_data",
    "teacher_labels",
    "toy_1d_data",
    "width_for_probability",
    "with_bias",
]

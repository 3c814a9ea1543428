"""reluflow: training dynamics and implicit bias of two-layer ReLU networks.

Exact gradient flow in reduced coordinates, gradient descent as its own
dynamics, the λ → 0 saddle-to-saddle jump process, and the analysis that
connects them. See THEORY.md for the mathematics.

Typical use::

    import reluflow as rf
    data = rf.orthogonal_data(200, seed=0)
    net = rf.init_network(data, m=16, scale=1e-8, seed=0)
    traj = rf.gradient_flow(data, net)
    rf.activation_events(traj)
    lim = rf.jump_process(data, 16, seed=0)
"""

from ._version import __version__
from .analysis import activation_events, plateaus
from .data import ArrayData, Dataset, OrthogonalData, array_data, gaussian_data, orthogonal_data
from .descent import gradient_descent, sharpness
from .errors import InputError, NotOrthogonalError, StabilityWarning
from .flow import gradient_flow
from .gaps import competitor_gaps, predicted_error, predicted_log_inv_scale
from .limit import LimitResult, Tie, jump_process
from .network import Network, init_network, load_init, save_init
from .theory import interpolation_probability, min_norm_sq, width_for_probability
from .trajectory import SolverStats, Trajectory
from .width_law import coverage_depth, fit_width_law, halving_ratio

__all__ = [
    "ArrayData",
    "Dataset",
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
    "width_for_probability",
]

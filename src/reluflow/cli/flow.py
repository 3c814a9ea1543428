"""``reluflow flow`` and ``reluflow descent``: one finite-λ run, summarised."""

from __future__ import annotations

import argparse
import math
import sys
from typing import TYPE_CHECKING, Any

from .. import _validate as V
from ..errors import InputError
from ._common import (
    INITS,
    LOSSES,
    add_data_options,
    add_parser,
    check_output,
    count,
    figure_formats,
    number,
    print_json,
    progress_enabled,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..trajectory import Trajectory


def _add_common(p: argparse.ArgumentParser) -> None:
    add_data_options(p).add_argument(
        "--teacher-width",
        type=count,
        default=None,
        help="neurons of the random ReLU teacher that labels --data teacher (default 6)",
    )
    g = p.add_argument_group("network")
    g.add_argument("--m", type=count, required=True, help="width (number of hidden neurons)")
    g.add_argument(
        "--scale",
        default="1e-8",
        help="initialisation scale lambda > 0, exact at any scale: 1e-8, 1e-1000, 1e-10000",
    )
    g.add_argument("--seed", type=count, default=0, help="seed of the data and the initialisation")
    g.add_argument(
        "--init",
        default="balanced",
        choices=INITS,
        help="w_j = lambda g_j, g_j ~ N(0, I_d/d), s_j = +-1, and balanced: a_j = s_j |w_j|; "
        "independent: a_j = lambda s_j |N(0,1)|; width_scaled: w_j ~ N(0, lambda^2/(m d)), "
        "balanced; uniform_exp: PyTorch's uniform w_j, a_j = +-(|w_j| + Exp(1)); "
        "uniform_exp_mean_field: the same with the 1/m output scaling "
        "(docs/field-setups.md)",
    )
    g.add_argument(
        "--bias",
        action="store_true",
        help="append the constant feature 1 to every input (a bias in each neuron, "
        "x_i -> (x_i, 1)); orthogonal inputs then are not orthogonal and take the general "
        "integrator",
    )
    g.add_argument(
        "--loss",
        default="half_mean",
        choices=LOSSES,
        help="half_mean: L = (1/2n) sum_i (f(x_i) - y_i)^2 (this package's convention); "
        "mean: L = (1/n) sum_i (f(x_i) - y_i)^2, the loss of PyTorch's MSELoss (its "
        "gradient flow runs twice as fast)",
    )
    g = p.add_argument_group("stopping")
    g.add_argument("--t-max", type=number, default=None, help="stop at this time t")
    g.add_argument(
        "--tau-max",
        type=number,
        default=None,
        help="stop at this rescaled time tau = t/log(1/lambda)",
    )
    g.add_argument(
        "--loss-tol",
        type=number,
        default=None,
        help="stop when the loss is below this (default 1e-10 mean(y^2)/2)",
    )
    g = p.add_argument_group("output")
    g.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the summary"
    )
    g.add_argument(
        "--plot",
        metavar="FILE",
        default=None,
        help="draw the loss against tau and every |a_j| (log scale) to FILE (.pdf or .png)",
    )
    g.add_argument(
        "--save-init",
        metavar="FILE",
        default=None,
        help="write the reduced initial state (y, x_norm, u0, a0, scale) as .npz (orthogonal data)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def register(sub: Any) -> None:
    p = add_parser(
        sub,
        "flow",
        "exact gradient flow from small initialisation",
        "Integrate gradient flow exactly (adaptive Dormand-Prince with per-neuron error "
        "control, ReLU kinks located as events) in reduced coordinates, and print the "
        "activation events, plateaus, final loss and |theta|^2.\n\n"
        "example: reluflow flow --n 200 --m 16 --scale 1e-8 --seed 0 --plot flow.pdf",
    )
    _add_common(p)
    g = p.add_argument_group("solver")
    g.add_argument("--rtol", type=number, default=1e-8, help="relative tolerance (per neuron)")
    g.add_argument("--atol", type=number, default=0.0, help="absolute tolerance floor")
    g.add_argument("--max-steps", type=count, default=1_000_000, help="step budget")
    p.set_defaults(func=run_flow)

    p = add_parser(
        sub,
        "descent",
        "gradient descent / minibatch SGD from small initialisation",
        "Run gradient descent with step --lr (or minibatch SGD with --batch-size) in "
        "reduced coordinates, and print the same summary as `reluflow flow`. Warns "
        "when lr > 2 / sharpness.\n\n"
        "example: reluflow descent --n 200 --m 16 --lr 1.0 --scale 1e-8",
    )
    _add_common(p)
    g = p.add_argument_group("descent")
    g.add_argument("--lr", type=number, required=True, help="step size eta")
    g.add_argument("--steps", type=count, default=None, help="number of iterations")
    g.add_argument(
        "--batch-size", type=count, default=None, help="minibatch size (default: full batch)"
    )
    g.add_argument("--batch-seed", type=count, default=0, help="seed of the minibatch order")
    g.add_argument("--max-steps", type=count, default=10_000_000, help="iteration budget")
    p.set_defaults(func=run_descent)


def _config(args: argparse.Namespace) -> dict[str, Any]:
    """The run's configuration, checked by the sweep's rules (:func:`reluflow.sweep.normalize_config`).

    Data, labels, norms, frame and teacher width are passed only when given, so that an
    option that does not apply to the data kind (``--frame`` on Gaussian data, ``--labels``
    on teacher data) is refused rather than ignored.
    """
    from ..sweep.config import ConfigError, normalize_config

    raw: dict[str, Any] = {
        "dynamics": args.command, "data": args.data, "n": args.n, "d": args.d, "m": args.m,
        "scale": args.scale, "init": args.init, "bias": args.bias, "loss": args.loss,
        "seed": args.seed,
    }
    given = {"labels": args.labels, "norms": args.norms, "frame": args.frame,
             "teacher_width": args.teacher_width}
    raw.update({k: v for k, v in given.items() if v is not None})
    if args.norms not in (None, "uniform"):
        raw["norms"] = V.finite_float(
            "--norms", args.norms, low=0.0, low_open=True, allowed="a positive number or 'uniform'"
        )
    if args.command == "descent":
        raw["lr"] = args.lr
    try:
        return normalize_config(raw)
    except ConfigError as exc:
        raise InputError(f"--{exc.key.replace('_', '-')}: {exc}") from None


def _setup(args: argparse.Namespace):
    """Check the output files, then build the data and the network (and save the latter).

    The data and the network are those of a sweep run of the same configuration
    (:func:`reluflow.sweep.run_config`): one seed, one run, from the command line or a spec.
    """
    from ..network import init_network, save_init
    from ..sweep.runs import _dataset

    check_output("--plot", args.plot, figure_formats() if args.plot else None)
    check_output("--save-init", args.save_init)
    cfg = _config(args)
    if args.n >= 1 and args.m >= 1:
        from .. import _memory

        general = cfg["data"] not in ("orthogonal", "sphere_orthogonal") or cfg.get("bias")
        _memory.check_run(
            args.command, args.n, args.m, cfg["d"] + bool(cfg.get("bias")) if general else None
        )
    data = _dataset(cfg)
    net = init_network(
        data, cfg["m"], cfg.get("scale"), log10_scale=cfg.get("log10_scale"), seed=cfg["seed"],
        init=cfg["init"],
    )
    args.config = cfg
    if args.save_init:
        save_init(args.save_init, data, net)
        if not args.json:
            print(
                f"initial state written to {args.save_init} (y, x_norm, u0, a0, scale; "
                f"run its limit with `reluflow limit --init {args.save_init}`)",
                flush=True,
            )
    return data, net


def run_flow(args: argparse.Namespace) -> int:
    data, net = _setup(args)  # user errors in the data and network first, before the solver loads
    from ..flow import gradient_flow

    tr = gradient_flow(
        data,
        net,
        t_max=args.t_max,
        tau_max=args.tau_max,
        loss_tol=args.loss_tol,
        rtol=args.rtol,
        atol=args.atol,
        max_steps=args.max_steps,
        loss=args.loss,
        progress=progress_enabled(args) and not args.json,
    )
    return _report(args, data, tr)


def run_descent(args: argparse.Namespace) -> int:
    data, net = _setup(args)
    from ..descent import gradient_descent

    tr = gradient_descent(
        data,
        net,
        args.lr,
        steps=args.steps,
        t_max=args.t_max,
        tau_max=args.tau_max,
        loss_tol=args.loss_tol,
        batch_size=args.batch_size,
        batch_seed=args.batch_seed,
        max_steps=args.max_steps,
        loss=args.loss,
        progress=progress_enabled(args) and not args.json,
    )
    return _report(args, data, tr)


def summary(data, tr: Trajectory) -> dict[str, Any]:
    from ..analysis import activation_events, plateaus

    ev = activation_events(tr)
    return {
        "dynamics": tr.dynamics,
        "success": tr.success,
        "status": tr.status,
        "message": tr.message,
        "final_loss": tr.final_loss,
        "norm_sq": tr.final.norm_sq(data),
        "log10_scale": tr.log10_scale,
        "events": [{"tau": r.tau, "t": r.t, "neuron": int(r.neuron)} for r in ev.itertuples()],
        "plateaus": plateaus(tr).to_dict(orient="records"),
        "conservation_drift": tr.conservation_drift,
        "wall_s": tr.wall_s,
        "t_final": float(tr.t[-1]),
        "tau_final": float(tr.tau[-1]),
        "stats": tr.stats.as_dict(),
        "provenance": tr.provenance,
    }


def _report(args: argparse.Namespace, data, tr: Trajectory) -> int:
    if args.plot:
        from ..plots import plot_trajectory

        plot_trajectory(
            tr, args.plot, title=f"{tr.dynamics}: n = {data.n}, m = {tr.m}, seed = {args.seed}"
        )
    s = summary(data, tr)
    s["files"] = {"plot": args.plot, "save_init": args.save_init}
    if args.json:
        print_json(s)
    else:
        out = sys.stdout
        out.write(
            f"{tr.dynamics} on {data!r}, m = {tr.m}, lambda = {V.format_scale(tr.log10_scale)}, "
            f"seed = {args.seed}\n"
        )
        out.write(f"  stopped: {tr.status} ({tr.message})\n")
        out.write(f"  activation events ({len(s['events'])}):\n")
        for e in s["events"]:
            out.write(f"    tau = {e['tau']:10.4f}   t = {e['t']:12.4f}   neuron {e['neuron']}\n")
        if s["plateaus"]:
            out.write("  plateaus (tau_start .. tau_end: loss):\n")
            for p in s["plateaus"]:
                out.write(f"    {p['tau_start']:10.4f} .. {p['tau_end']:10.4f}: {p['loss']:.6g}\n")
        out.write(f"  final loss        {tr.final_loss:.6e}\n")
        out.write(f"  |theta|^2         {s['norm_sq']:.6f}\n")
        out.write(f"  conservation drift {tr.conservation_drift:.2e} (relative, a_j^2 - |w_j|^2)\n")
        st = tr.stats
        out.write(
            f"  solver            {st.steps} steps, {st.rejected} rejected, {st.evaluations} "
            f"evaluations, {st.kinks} kinks"
            + (f", {st.sliding} sliding-mode entries" if st.sliding else "")
            + "\n"
        )
        out.write(f"  wall time         {tr.wall_s:.3f} s\n")
        if args.plot:
            out.write(f"  figure            {args.plot}\n")
    if not tr.success:
        print(f"reluflow {args.command}: the run is incomplete: {tr.message}", file=sys.stderr)
        return 1
    return 0 if math.isfinite(tr.final_loss) else 1

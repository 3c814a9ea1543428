"""The integrators behind :func:`reluflow.gradient_flow` and :func:`reluflow.gradient_descent`.

Private: the public functions choose among them and give every one the same inputs and the
same :class:`~reluflow.trajectory.Trajectory`. One concept per module:

* ``field`` — the gradient field in reduced coordinates and the Filippov resolution of
  sliding modes (docs/sliding-modes.md); ``events`` — kinks located on a step's dense output
  and the switching decided there; ``dynamics`` — what every loop shares: stopping rules,
  the trajectory recorder, the kink log, progress bars;
* orthogonal data: ``linear`` (the initial phase in closed form), ``plateau`` (plateaus in
  closed form), ``orthogonal_numba`` (the compiled solver at any scale;
  docs/orthogonal-flow.md, docs/any-scale.md);
* general data: ``general_phase`` (the initial phase in closed form), ``general`` and
  ``general_numba`` (the compiled solver), ``small_neurons`` (kinks of small neurons inside a
  step; docs/general-data.md);
* ``weight_space`` and ``weight_field`` — full weights, for ``n > d`` (docs/field-setups.md).

The NumPy reference loop, which every compiled engine reproduces to rounding, is
``reluflow.flow._gradient_flow_numpy``.
"""

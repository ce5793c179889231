"""A thin, checked wrapper around HiGHS (highspy) for the sparse models of :mod:`citywatch.plan`.

The coverage models build their constraint matrices with :mod:`scipy.sparse` and hand them to
HiGHS column-wise in one call (``passModel``), which is much faster than adding rows one by one
through the modelling layer.  Every solve is checked: anything but a proven optimum raises
:class:`~citywatch.errors.SolverError`, except a time limit with a feasible incumbent, which is
returned with its relative gap so the caller can report it.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass

import highspy
import numpy as np
import scipy.sparse as sp

from citywatch.errors import SolverError

__all__ = ["MilpSolution", "solve_milp"]


def _new_highs() -> highspy.Highs:
    """A HiGHS instance, created with standard output silenced.

    The first instance prints a licence banner on the C-level standard output, which would
    corrupt ``--json`` output; the log itself is controlled by ``output_flag``.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            return highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


@dataclass(frozen=True)
class MilpSolution:
    """The outcome of one HiGHS solve.

    Attributes
    ----------
    x : numpy.ndarray
        Values of the columns.
    objective : float
        Objective value of ``x`` (in the model's own sense).
    bound : float
        Best proven bound on the objective (equal to ``objective`` for an LP).
    gap : float
        Relative gap ``|bound - objective| / max(|objective|, 1e-9)``; 0 for a proven optimum.
    status : str
        ``"optimal"`` or ``"time_limit"``.
    seconds : float
        Wall-clock run time reported by HiGHS.
    """

    x: np.ndarray
    objective: float
    bound: float
    gap: float
    status: str
    seconds: float


def solve_milp(
    cost: np.ndarray,
    matrix: sp.spmatrix | sp.sparray,
    row_lower: np.ndarray,
    row_upper: np.ndarray,
    col_lower: np.ndarray,
    col_upper: np.ndarray,
    integer: np.ndarray | None,
    *,
    maximize: bool,
    time_limit: float | None = None,
    mip_rel_gap: float = 1e-9,
    start: np.ndarray | None = None,
    verbose: bool = False,
) -> MilpSolution:
    """Solve ``opt cost·x  s.t.  row_lower <= A x <= row_upper,  col_lower <= x <= col_upper``.

    Parameters
    ----------
    cost, matrix, row_lower, row_upper, col_lower, col_upper
        The model; use ``numpy.inf`` for absent bounds.
    integer : numpy.ndarray or None
        Boolean mask of integer columns; ``None`` solves the LP.
    maximize : bool
        Objective sense.
    time_limit : float, optional
        Seconds; on expiry the incumbent is returned with ``status="time_limit"`` and its gap.
    mip_rel_gap : float
        Relative gap at which HiGHS declares optimality (default 1e-9: a proven optimum up to
        floating-point noise, stricter than HiGHS's own default of 1e-4).
    start : numpy.ndarray, optional
        A feasible solution to start the branch and bound from.
    verbose : bool
        Show the HiGHS log.

    Returns
    -------
    MilpSolution

    Raises
    ------
    SolverError
        When the model is infeasible or unbounded, or no proven optimum (or, under a time limit,
        no feasible incumbent) was found.
    """
    csc = sp.csc_array(matrix)
    csc.sort_indices()
    n_rows, n_cols = csc.shape
    lp = highspy.HighsLp()
    lp.num_col_ = n_cols
    lp.num_row_ = n_rows
    lp.col_cost_ = np.asarray(cost, dtype=np.float64)
    lp.col_lower_ = np.asarray(col_lower, dtype=np.float64)
    lp.col_upper_ = np.asarray(col_upper, dtype=np.float64)
    lp.row_lower_ = np.asarray(row_lower, dtype=np.float64)
    lp.row_upper_ = np.asarray(row_upper, dtype=np.float64)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = csc.indptr.astype(np.int32)
    lp.a_matrix_.index_ = csc.indices.astype(np.int32)
    lp.a_matrix_.value_ = csc.data.astype(np.float64)
    lp.sense_ = highspy.ObjSense.kMaximize if maximize else highspy.ObjSense.kMinimize
    is_mip = integer is not None and bool(np.any(integer))
    if is_mip:
        assert integer is not None
        lp.integrality_ = [
            highspy.HighsVarType.kInteger if flag else highspy.HighsVarType.kContinuous
            for flag in integer
        ]
    h = _new_highs()
    h.setOptionValue("output_flag", verbose)
    h.setOptionValue("mip_rel_gap", float(mip_rel_gap))
    if time_limit is not None:
        h.setOptionValue("time_limit", float(time_limit))
    h.passModel(lp)
    if start is not None:
        solution = highspy.HighsSolution()
        solution.col_value = np.asarray(start, dtype=np.float64)
        solution.value_valid = True
        h.setSolution(solution)
    h.run()
    model_status = h.getModelStatus()
    info = h.getInfo()
    has_solution = info.primal_solution_status == highspy.SolutionStatus.kSolutionStatusFeasible
    if model_status == highspy.HighsModelStatus.kOptimal:
        status = "optimal"
    elif model_status == highspy.HighsModelStatus.kTimeLimit and has_solution:
        status = "time_limit"
    else:
        raise SolverError(
            f"HiGHS did not prove optimality: {h.modelStatusToString(model_status)}"
            + ("" if has_solution else " (no feasible solution)")
        )
    x = np.asarray(h.getSolution().col_value, dtype=np.float64)
    objective = float(info.objective_function_value)
    if is_mip:
        bound = float(info.mip_dual_bound)
        gap = abs(bound - objective) / max(abs(objective), 1e-9) if math.isfinite(bound) else 1.0
        if status == "optimal":
            gap = min(gap, float(info.mip_gap))
    else:
        bound, gap = objective, 0.0
    return MilpSolution(
        x=x, objective=objective, bound=bound, gap=gap, status=status, seconds=h.getRunTime()
    )

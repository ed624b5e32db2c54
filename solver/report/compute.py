"""The sizing report's numbers: inputs and a calibration profile in, the `Solution` out (pure).

`compute_solution(inputs, profile, profile_provenance)` checks the inputs and solves the three cost
models once (`solver.report.solve.solve`), then runs each entry of `solver.report.sections.SECTIONS`
on the result: every section is a small function returning its part of the solution, a model of its
own, and the whole is a `solver.report.schema.Solution` (rendered by `solver.report.output.render`). Nothing
here prints or writes.

* paper:      Eq. 6 (`solver.optimize.solve.optimize_cost`) with the paper's constants
              (`core.paper.PAPER`: A100-40GB INT8 at MFU 50 % input / 1 % output).
* calibrated: Eq. 6 with the profile's dollars per useful FLOP of each phase, still constant in N.
* calibrated, N-dependent: `solver.optimize.solve.optimize_cost_general` with the lifetime inference
              dollars of an N-parameter model from `solver.optimize.serving` (the profile's performance model).
"""

from __future__ import annotations

from solver.report.schema import Solution
from solver.report.sections import SECTIONS
from solver.report.solve import (
    PaperInference,
    ReportInputs,
    ServingModel,
    Solved,
    check_inputs,
    serving_model,
    solve,
)

__all__ = ["PaperInference", "ReportInputs", "ServingModel", "Solved", "check_inputs", "compute_solution",
           "serving_model", "solve"]


def compute_solution(inputs: ReportInputs, profile, profile_provenance: dict, *, tool: str = "solver",
                     label: str | None = None, others: tuple = ()) -> Solution:
    """Every number of the report (pure): one entry per section of `solver.report.sections.SECTIONS`.

    `others`: (profile, provenance, label) of further inference hardware for the side-by-side
    `hardware` section (`solver.report.hardware`); the report's other sections are the first profile's.
    """
    solved = solve(inputs, profile, profile_provenance, tool, label=label, others=others)
    return Solution(**{key: section(solved) for key, section in SECTIONS})

"""The report's "prediction check": how well the profile's performance model predicts sizes it never saw.

From the profile's `performance_model`: for each ladder size, the runs measured on it against what
the model fitted *without that size* predicted (leave one model out), their relative errors, the
worst error per figure, the forms compared, and a parity plot (predicted against measured output
tok/s and $/request, one colour per size). Compute (`section`) and plot (`plot`) are pure functions
of the profile / the Solution; the section is rendered by `solver.report.output.render`.
"""

from __future__ import annotations

import io

from core.schema.perfmodel import ErrorSplit, HeldOutRun, OperatorCheck
from solver.report.records import Section

PLOT = "prediction_check.png"  # the name solver.report.output.render shows it under (PREDICTION_PLOT)


class FittedValue(Section):
    """A fitted constant of the step model with its bootstrap interval."""

    value: float
    low: float
    high: float
    unit: str


class FittedOn(Section):
    """A ladder size the model was fitted on."""

    name: str
    params_matmul: float
    runs: int


class FormScore(Section):
    """A step-time form compared on held-out sizes."""

    form: str
    score: float | None  # worst held-out |error| on output tok/s and $/request; None: not fitted
    chosen: bool


class PredictionCheck(Section):
    """solution.json `prediction_check`: the profile's performance model against sizes it never saw."""

    form: str
    formula: str
    # keyed by the chosen form's parameter names (t0_s, layer_s, bandwidth_bytes_per_s, ...): which
    # constants a step-time form has is the form's business (calibrate.perfmodel.forms), so this stays a map
    params: dict[str, FittedValue]
    request_overhead_s: float
    fitted_on: list[FittedOn]
    held_out: list[HeldOutRun]  # core.schema.perfmodel's record of each held-out run
    held_out_max_abs_error: dict[str, float | None]  # per figure, as core.schema.perfmodel.PerformanceModel has it
    target_error: float
    meets_target: bool
    warning: str | None
    forms: list[FormScore]
    # per figure: the error beside the replicates' noise floor and the bias share (profiles before it: {})
    error_split: dict[str, ErrorSplit] = {}
    operator_check: OperatorCheck | None = None  # the sizes predicted from the device's operators


def section(profile) -> PredictionCheck | None:
    """The section's data, or None when the profile has no performance model."""
    pm = getattr(profile, "performance_model", None)
    if pm is None:
        return None
    return PredictionCheck.model_validate({
        "form": pm.form,
        "formula": pm.formula,
        "params": {k: {"value": p.value, "low": p.low, "high": p.high, "unit": p.unit} for k, p in pm.params.items()},
        "request_overhead_s": pm.request_overhead_s.value,
        "fitted_on": [{"name": m.name, "params_matmul": m.params_matmul, "runs": len(m.run_ids)} for m in pm.fitted_on],
        "held_out": [r.model_dump() for r in pm.held_out],
        "held_out_max_abs_error": dict(pm.held_out_max_abs_error),
        "target_error": pm.target_error,
        "meets_target": pm.meets_target,
        "warning": pm.warning,
        "forms": [{"form": f.form, "score": f.score, "chosen": f.chosen} for f in pm.forms],
        "error_split": {k: v.model_dump() for k, v in getattr(pm, "error_split", {}).items()},
        "operator_check": oc.model_dump() if (oc := getattr(pm, "operator_check", None)) is not None else None,
    })


def plot(sol) -> bytes | None:
    """The parity plot of a Solution's prediction check (None without held-out runs)."""
    pc = sol.prediction_check
    if pc is None or not pc.held_out:
        return None
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    models = list(dict.fromkeys(r.model for r in pc.held_out))
    for ax, key, label in ((axes[0], "output_tokens_per_s", "output tok/s"), (axes[1], "usd_per_request", "$ / request")):
        vals = []
        for i, m in enumerate(models):
            pts = [(getattr(r.measured, key), getattr(r.predicted, key)) for r in pc.held_out
                   if r.model == m and getattr(r.measured, key) and getattr(r.predicted, key)]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, "o", color=f"C{i}", label=m)
                vals += list(xs) + list(ys)
        if vals:
            lo, hi = min(vals) / 1.5, max(vals) * 1.5
            ax.plot([lo, hi], [lo, hi], color="gray", lw=1)
            t = pc.target_error
            ax.fill_between([lo, hi], [lo * (1 - t), hi * (1 - t)], [lo * (1 + t), hi * (1 + t)], color="gray", alpha=0.15,
                            label=f"±{t:.0%}")
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"measured {label}")
        ax.set_ylabel(f"predicted {label} (size held out)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()

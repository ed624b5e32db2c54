"""The report's "prediction check": how well the profile's performance model predicts sizes it never saw.

From the profile's `performance_model`: for each ladder size, the runs measured on it against what
the model fitted *without that size* predicted (leave one model out), their relative errors, the
worst error per figure, the forms compared, and a parity plot (predicted against measured output
tok/s and $/request, one colour per size). Compute (`section`), render (`render`) and plot (`plot`)
are pure functions of the profile / the solution dict.
"""

from __future__ import annotations

import io

from solver.report_render import Heading, Image, Para, Table, fmt_count, fmt_num, fmt_pct, fmt_usd

PLOT = "prediction_check.png"


def section(profile) -> dict | None:
    """The section's data, or None when the profile has no performance model."""
    pm = getattr(profile, "performance_model", None)
    if pm is None:
        return None
    return {
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
    }


def _err(x) -> str:
    return "n/a" if x is None else f"{x:+.1%}"


def render(sol: dict, images: list[str]) -> list:
    pc = sol.get("prediction_check")
    if not pc:
        return [Heading(2, "Prediction check"), Para(
            "This profile has no performance model (it measured one model size), so the N-dependent serving "
            "cost is not computed: build a profile from a ladder of sizes (python -m calibrate profile RUNS --ladder).")]
    worst = pc["held_out_max_abs_error"]
    doc: list = [Heading(2, "Prediction check: sizes the performance model never saw")]
    if pc["warning"]:
        doc.append(Para(f"WARNING: {pc['warning']}", strong=True))
    doc.append(Para(
        f"Step-time form '{pc['form']}': {pc['formula']}, fitted on "
        + ", ".join(f"{m['name']} ({fmt_count(m['params_matmul'])})" for m in pc["fitted_on"])
        + f". Each row is a run of one size predicted by the model refitted without that size (leave one "
        f"model out). Worst held-out error: output tok/s {fmt_pct(worst.get('output_tokens_per_s'))}, "
        f"$/request {fmt_pct(worst.get('usd_per_request'))}, TTFT {fmt_pct(worst.get('ttft_s'))}, "
        f"TPOT {fmt_pct(worst.get('tpot_s'))} (target {fmt_pct(pc['target_error'], 0)})."))
    if PLOT in images:
        doc.append(Image(PLOT, "Predicted against measured output tok/s and $/request for each ladder size"))
    rows = []
    for r in pc["held_out"]:
        m, p, e = r["measured"], r["predicted"], r["error"]
        rows.append([r["model"], f"{r['input_tokens']}/{r['output_tokens']}", str(r["concurrency"]),
                     fmt_num(m["output_tokens_per_s"]), fmt_num(p["output_tokens_per_s"]), _err(e["output_tokens_per_s"]),
                     fmt_usd(m["usd_per_request"]), fmt_usd(p["usd_per_request"]), _err(e["usd_per_request"])])
    doc.append(Table(["Held-out size", "In/out tokens", "Conc.", "Measured tok/s", "Predicted tok/s", "Error",
                      "Measured $/req", "Predicted $/req", "Error"], rows))
    doc.append(Table(["Form compared", "Worst held-out error (tok/s, $/req)", "Used"],
                     [[f["form"], fmt_pct(f["score"]), "yes" if f["chosen"] else ""] for f in pc["forms"]]))
    return doc


def plot(sol: dict) -> bytes | None:
    pc = sol.get("prediction_check")
    if not pc or not pc["held_out"]:
        return None
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    models = list(dict.fromkeys(r["model"] for r in pc["held_out"]))
    for ax, key, label in ((axes[0], "output_tokens_per_s", "output tok/s"), (axes[1], "usd_per_request", "$ / request")):
        vals = []
        for i, m in enumerate(models):
            pts = [(r["measured"][key], r["predicted"][key]) for r in pc["held_out"]
                   if r["model"] == m and r["measured"][key] and r["predicted"][key]]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, "o", color=f"C{i}", label=m)
                vals += list(xs) + list(ys)
        if vals:
            lo, hi = min(vals) / 1.5, max(vals) * 1.5
            ax.plot([lo, hi], [lo, hi], color="gray", lw=1)
            t = pc["target_error"]
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

"""The report's PNG plots, drawn from a `Solution` (solver.report.schema) with matplotlib's Agg backend (no display).

cost_vs_params.png (lifetime cost against N at the target loss, three cost models),
fig6_paper.png / fig6_calibrated.png (Figure-6-style maps), decode_curve.png (measured and
predicted decode curve of the profiled model with its roofline; the chosen model's decode MFU against
batch), prediction_check.png (held-out predictions against measurements, when the profile has a
performance model).
"""

from __future__ import annotations

import io

from solver.report import prediction as report_prediction
from solver.report.output.render import FRONT_PLOT, SCENARIO_LABELS, fmt_count, fmt_s


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def make_plots(sol) -> dict[str, bytes]:
    """PNG bytes per file name, drawn with matplotlib's Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    return {
        "cost_vs_params.png": _plot_cost_vs_params(sol),
        "fig6_paper.png": _plot_map(sol, "paper"),
        "fig6_calibrated.png": _plot_map(sol, "calibrated"),
        "decode_curve.png": _plot_decode(sol),
    } | _prediction_plot(sol) | _front_plot(sol)


def _front_plot(sol) -> dict[str, bytes]:
    fr = sol.front
    if not fr or not any(p.tokens_per_s_per_user for hw in fr.hardware for se in hw.series for p in se.points):
        return {}
    return {FRONT_PLOT: _plot_front(fr)}


def _plot_front(fr) -> bytes:
    """Tok/s per device against tok/s per user: measured markers, predicted lines, SLO line, operating point."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    many = len(fr.hardware) > 1
    markers = "osD^v<>pPX"
    k = 0
    slo_lines = set()
    ttft_crossed = False
    for h, hw in enumerate(fr.hardware):
        tag = f"{hw.label}: " if many else ""
        for se in hw.series:
            pts = [p for p in se.points if p.tokens_per_s_per_user]
            if not pts:
                continue
            color = f"C{h if many else k % 10}"
            x = [p.tokens_per_s_per_user for p in pts]
            y = [p.tokens_per_s_per_device for p in pts]
            name = se.model if se.model != "chosen" else f"chosen model ({fmt_count(se.params)})"
            stat = ", mean TPOT" if se.tpot_statistic == "mean" else ""
            label = f"{tag}{name} {se.input_tokens:g}/{se.output_tokens:g} ({se.kind}{stat})"
            if se.kind != "predicted":  # measured (or assumed) runs: markers
                ax.plot(x, y, markers[k % len(markers)], color=color, ms=6, label=label)
            else:
                ax.plot(x, y, "-" if se.model == "chosen" else "--", color=color, lw=1.5, label=label)
            k += 1
            ttft_limit = hw.slo.ttft_p90_s
            late = [p for p in pts if ttft_limit is not None and p.ttft_s is not None and p.ttft_s > ttft_limit]
            if late:  # TTFT is not an axis here: points beyond its limit are crossed out
                ax.plot([p.tokens_per_s_per_user for p in late], [p.tokens_per_s_per_device for p in late],
                        "x", color="r", ms=5, mew=1, label=None if ttft_crossed else
                        f"TTFT above its SLO ({fmt_s(ttft_limit)})")
                ttft_crossed = True
        op = hw.operating_point
        if op is not None and op.tokens_per_s_per_user:
            ax.plot([op.tokens_per_s_per_user], [op.tokens_per_s_per_device], "*", ms=16,
                    color=f"C{h}" if many else "k", mec="k",
                    label=f"{tag}operating point, batch {op.concurrency:g} (predicted"
                          f"{', meets SLO' if op.meets_slo else ', misses SLO'})")
        xmin = hw.slo.tokens_per_s_per_user_min
        if xmin and xmin not in slo_lines:
            slo_lines.add(xmin)
            ax.axvline(xmin, color="r", ls=":", lw=1.5,
                       label=f"{tag}TPOT SLO {fmt_s(hw.slo.tpot_p90_s)} ({xmin:.3g} tok/s per user)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    for xmin in slo_lines:
        ax.axvspan(ax.get_xlim()[0], xmin, color="r", alpha=0.05)
    ax.set_xlabel("tokens per second per user (1 / TPOT p90; ladder runs: 1 / mean TPOT)")
    ax.set_ylabel("output tokens per second per device")
    ax.set_title("Throughput-latency front: measured runs and performance-model predictions")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _png(fig)


def _prediction_plot(sol) -> dict[str, bytes]:
    png = report_prediction.plot(sol)
    return {report_prediction.PLOT: png} if png else {}


def _plot_cost_vs_params(sol) -> bytes:
    import matplotlib.pyplot as plt
    import numpy as np

    c = sol.cost_curves
    n = np.asarray(c.params)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    keys = (("paper_total_usd", "paper", "C0"), ("calibrated_total_usd", "calibrated", "C1"),
            ("n_dependent_total_usd", "calibrated_n_dependent", "C2"))
    keys = tuple(k for k in keys if getattr(c, k[0]) is not None and getattr(sol.scenarios, k[1]) is not None)
    for col, key, color in keys:
        s = getattr(sol.scenarios, key)
        ref = s.chinchilla.total_cost_usd
        ax.plot(n, np.asarray(getattr(c, col)) / ref, color=color, label=SCENARIO_LABELS[key])
        ax.plot([s.optimal.params], [s.optimal.total_cost_usd / ref], "o", color=color)
    ax.axvline(sol.target.chinchilla_equivalent_params, color="gray", ls="--", lw=1, label="Chinchilla-style N")
    ax.set_xscale("log")
    ax.set_yscale("log")
    lows = [getattr(sol.scenarios, k).optimal.total_cost_usd / getattr(sol.scenarios, k).chinchilla.total_cost_usd
            for _, k, _ in keys]
    ax.set_ylim(min(lows) * 0.7, 10.0)
    ax.set_xlabel("parameters N (D from the loss constraint)")
    ax.set_ylabel("lifetime cost / Chinchilla-style cost")
    ax.set_title(f"Lifetime cost at loss {sol.target.loss:.4g}, {fmt_count(sol.demand.requests)} requests")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def _plot_map(sol, key: str) -> bytes:
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import LogNorm

    m = sol.maps
    x, y = np.asarray(m.requests), np.asarray(m.chinchilla_params)
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.6), layout="constrained")
    titles = (("cost_ratio", "(a) total cost ratio", (0.2, 0.4, 0.6, 0.8, 0.9, 0.95)),
              ("params_ratio", "(b) parameter ratio", (0.1, 0.2, 0.3, 0.5, 0.7, 0.9)),
              ("tokens_ratio", "(c) training-token ratio", (1.5, 2, 5, 10, 100, 1000)))
    for i, (ax, (field, title, levels)) in enumerate(zip(axes, titles)):
        z = np.asarray(getattr(getattr(m, key), field))
        norm = LogNorm(vmin=max(z.min(), 1e-6), vmax=max(z.max(), z.min() * 1.0001)) if field != "cost_ratio" else None
        pc = ax.pcolormesh(x, y, z, shading="nearest", norm=norm, cmap="viridis")
        inside = [v for v in levels if z.min() < v < z.max()]
        if inside:
            cs = ax.contour(x, y, z, colors="white", linewidths=0.6, levels=inside)
            ax.clabel(cs, fontsize=7, fmt="%.3g")
        fig.colorbar(pc, ax=ax)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("lifetime inference requests")
        if i == 0:
            ax.set_ylabel("quality: Chinchilla-equivalent params / loss")
        lo, hi = float(y.min()), float(y.max())
        ticks = [t for t in (1e9, 3e9, 1e10, 3e10, 1e11, 3e11, 1e12) if lo * 0.999 <= t <= hi * 1.001]
        law = sol.law
        ax.set_yticks(ticks, [f"{fmt_count(t)}\nL={law.E + (1 + law.alpha / law.beta) * law.A * t ** -law.alpha:.3f}"
                              for t in ticks], fontsize=8)
        ax.minorticks_off()
        ax.set_title(title, fontsize=10)
        ax.plot([sol.demand.requests], [sol.target.chinchilla_equivalent_params], "r*", ms=12)
    fig.suptitle(SCENARIO_LABELS[key] + ": cost-optimal / Chinchilla-style")
    return _png(fig)


def _plot_decode(sol) -> bytes:
    import matplotlib.pyplot as plt
    import numpy as np

    dc = sol.decode_curve
    peak = dc.peak_flop_per_s_total
    scale, ylabel = (1.0 / peak, "decode MFU") if peak else (1.0, "decode FLOP/s (paper convention)")
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.5))
    b = np.asarray(dc.batch)
    if dc.predicted_flop_per_s is not None:
        ax.plot(b, np.asarray(dc.predicted_flop_per_s) * scale, "-", color="C0",
                label="performance model (predicted)")
    roof = np.asarray([np.nan if v is None else v for v in dc.roofline_flop_per_s], dtype=float)
    if np.isfinite(roof).any():
        ax.plot(b, roof * scale, "--", color="C3", label="roofline of the profiled model")
    if dc.measured:
        ax.plot([p.concurrency for p in dc.measured], [p.achieved_flop_per_s * scale for p in dc.measured],
                "o", color="k", label="measured")
    op = dc.operating_point
    if op:
        ax.axvline(op.concurrency, color="gray", ls=":", label="operating point (SLO)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("concurrency (decode batch)")
    ax.set_ylabel(ylabel)
    ax.set_title("Profiled model: measured and predicted decode vs roofline")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    scen = sol.scenarios.calibrated_n_dependent
    if dc.chosen_batch is not None and scen is not None:
        cb = np.asarray(dc.chosen_batch)
        per_dev_peak = (peak / max(1, sol.provenance.profile.get("device_count", 1))) if peak else None
        cf = np.asarray(dc.chosen_flop_per_s_per_device) * ((1.0 / per_dev_peak) if per_dev_peak else 1.0)
        ax2.plot(cb, cf, color="C2")
        sv = scen.serving_optimal
        ax2.axvline(sv.batch, color="gray", ls=":", label=f"batch used ({sv.batch_limited_by})")
        ax2.set_xscale("log")
        ax2.set_xlabel("decode batch")
        ax2.set_ylabel("decode MFU per device" if per_dev_peak else "decode FLOP/s per device")
        ax2.set_title(f"Chosen model {fmt_count(dc.chosen_params)} params on "
                      f"{dc.chosen_devices_per_replica} device(s), predicted")
        ax2.grid(True, which="both", alpha=0.3)
        ax2.legend(fontsize=8)
    else:
        ax2.axis("off")
        ax2.text(0.5, 0.5, "no performance model in the profile:\nno N-dependent serving cost",
                 ha="center", va="center")
    return _png(fig)

"""solver: decide. The paper's Eq. 3 / Eq. 6 solved exactly with calibrated constants, and sizing reports.

    optimize/   the solver, its checks, laws, costs from profiles, N-dependent serving cost, demand,
                data limits, the paper's tables, `solver optimize`
    report/     the sizing report: inputs solved once, one typed section per concern, outputs
                (Markdown/HTML, plots, the report directory, the browser check), `solver report`
    cli.py      `python -m solver SUBCOMMAND`

It imports calibrate and core (never bench); docs/architecture.md has a line per file.
"""

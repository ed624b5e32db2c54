"""calibrate: measured runs -> per-hardware profiles; training runs -> loss-law fits.

Files, one job each (the stage imports bench only, never solver):

    cli.py, cli_types.py    `python -m calibrate SUBCOMMAND`: the list of subcommands, two argparse types
    law_cli.py              `calibrate law`: CSV -> law file
    law.py                  the loss law L(N, D) = E + A/N^alpha + B/D^beta: terms, derivatives, inverses
    lawfit.py               its Eq. 4 fit (Huber on log loss, L-BFGS from a grid) and bootstrap
    profile_cli.py          `calibrate profile`: runs -> profile file, the table
    runs.py                 find, load, flatten and screen run directories
    ingest.py               other tools' results (vllm bench serve, guidellm) as runs
    window.py               a run's steady-state window: device time and tokens
    tokencost.py            per-token costs: joint fit, phase-isolated estimates, bootstrap
    curve.py                decode curve, SLO, operating point
    profile.py              assembly of the Profile
    schema.py, errors.py    the files written (Profile, LawFile; load/save) and the one error (InputError)

The performance model of a ladder of model sizes is in steps.py, perfmodel.py, perf_build.py,
perf_schema.py, simulate.py, ladder.py and predict_cli.py.
"""

"""Run directories read as evidence: records, other tools' results, the steady window, engine steps."""

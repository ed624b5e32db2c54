"""`python -m bench prepare|run|sweep|hardware` (see bench/cli.py)."""

import sys

from bench.cli import main

if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("python -m bench: interrupted; the current run has no run.json and will be redone by the next sweep",
              file=sys.stderr)
        sys.exit(130)

"""`python -m calibrate law|profile ...`; see calibrate.cli."""

import os
import sys

# One BLAS thread: the fits are 5-dimensional and BLAS threads only cost wake-ups (see
# calibrate.law.fit._one_blas_thread). Set before numpy loads; a user's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from calibrate.cli import main  # noqa: E402

sys.exit(main())

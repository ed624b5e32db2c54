"""Stop signals: SIGINT, SIGTERM and SIGHUP become one exception, `Interrupted`, raised in the
main thread, so a run unwinds in order (the load, the run's marker, then the server) and the
process exits with 128 + the signal number. Used by bench.load.client, bench.server.process and the CLI.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
INTERRUPT_GRACE_S = 2.0  # after an interrupt the server gets this long after SIGTERM, then SIGKILL


class Interrupted(SystemExit):
    """A stop signal (SIGTERM, SIGINT, SIGHUP) arrived. Raised in the main thread so the stack
    unwinds in order: the load is cancelled (in-flight requests recorded as interrupted), the run is
    marked, the server is stopped; uncaught, the process exits with 128 + the signal number."""

    def __init__(self, signum: int):
        super().__init__(128 + int(signum))
        self.signum = int(signum)

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    def __str__(self) -> str:
        return f"interrupted by {self.signal_name}"


def _raise_interrupted(signum, frame):  # noqa: ARG001
    raise Interrupted(signum)


def install_stop_handlers(signals: Sequence[int] = STOP_SIGNALS) -> bool:
    """Make each of `signals` raise `Interrupted` (the CLI calls this; SIGINT then behaves exactly as
    SIGTERM). Only possible from the main thread: returns False elsewhere."""
    if threading.current_thread() is not threading.main_thread():
        return False
    for sig in signals:
        signal.signal(sig, _raise_interrupted)
    return True


def is_interrupt(exc: BaseException | None) -> bool:
    return isinstance(exc, (Interrupted, KeyboardInterrupt))

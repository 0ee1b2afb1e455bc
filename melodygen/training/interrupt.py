"""Graceful Ctrl-C: once the training loop runs, the first SIGINT (or SIGTERM) asks it to stop
after the current step; a second SIGINT stops at once. Before the loop (preparing the data,
building the model) there is nothing to save, so SIGINT stops at once."""

from __future__ import annotations

import contextlib
import signal
import threading


class StopFlag:
    """Set when the user asked to stop; the loop reads `requested` once per step. `armed` is
    set when the loop starts: from then on a first SIGINT waits for the step to finish."""

    def __init__(self) -> None:
        self.requested = False
        self.armed = False


@contextlib.contextmanager
def catch_interrupts():
    """Yields a `StopFlag` set by SIGINT/SIGTERM while the block runs (main thread only;
    elsewhere the flag is never set and signals keep their usual effect)."""
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def on_signal(signum, frame):
        if signum == signal.SIGINT and (flag.requested or not flag.armed):
            raise KeyboardInterrupt
        flag.requested = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

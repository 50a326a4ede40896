"""SIGTERM and Ctrl-C as a request to stop: the trainer finishes the step,
writes a checkpoint and raises `Interrupted`."""

import signal
import sys


class Signals:
    """Turns SIGTERM and the first Ctrl-C into a flag checked every step."""

    def __init__(self):
        self.received = None
        self._previous = {}

    def __enter__(self):
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame):
        if self.received == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.received = signum
        print(
            f"\nkft: {signal.Signals(signum).name}: finishing this step and "
            "writing a checkpoint (Ctrl-C again stops at once)",
            file=sys.stderr,
            flush=True,
        )

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

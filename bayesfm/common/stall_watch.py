"""A watchdog for computations that stop without an error.

XLA's CPU runtime now and then parks every worker thread while the caller waits for the
result: the process sits at 0% CPU for good (seen in long catalogue runs, inside one compiled
call; the cause is not found). Nothing can cancel the call, so the watchdog ends the process
with a message instead of leaving it idle: what was written (a catalogue's finished chunks)
stays on disk, and the same command resumes.
"""

import contextlib
import os
import sys
import threading
import time

import jax

__all__ = ["StallWatch", "STALL_EXIT_CODE", "CHUNK_STALL_SECONDS", "watch_on_cpu"]

STALL_EXIT_CODE = 75  # EX_TEMPFAIL: try again
CHUNK_STALL_SECONDS = 300.0  # a catalogue chunk's fit never idles this long unless XLA stalled


class StallWatch:
    """Context manager: ends the process (exit code ``STALL_EXIT_CODE``) when the process
    uses less than ``min_cpu_seconds`` of CPU over ``seconds`` of wall time inside it.

    Args:
        seconds: The wall time without CPU use that counts as a stall.
        what: What the block does, for the message.
        resume_hint: What to do next, for the message.
        min_cpu_seconds: CPU time (all threads) below which the process counts as idle.
    """

    def __init__(self, seconds: float, what: str, resume_hint: str, min_cpu_seconds=0.5):
        self.seconds, self.min_cpu = seconds, min_cpu_seconds
        self.message = (
            f"bayesfm: {what} used no CPU for {seconds:.0f} s: a compiled computation stalled "
            f"(an intermittent XLA CPU runtime problem). {resume_hint}"
        )
        self._done = None

    def __enter__(self):
        self._done = threading.Event()  # one per block, so that a reused watch starts afresh
        threading.Thread(target=self._watch, args=(self._done,), daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        return False

    def _watch(self, done: threading.Event):
        poll = min(10.0, self.seconds / 4)
        since = last = time.monotonic()
        cpu_then = time.process_time()
        while not done.wait(poll):
            now, cpu_now = time.monotonic(), time.process_time()
            # busy, or the process was suspended (a late poll: Ctrl-Z, a paused machine)
            if cpu_now - cpu_then >= self.min_cpu or now - last > 3 * poll:
                since, cpu_then = now, cpu_now
            elif now - since >= self.seconds:
                print(self.message, file=sys.stderr, flush=True)
                os._exit(STALL_EXIT_CODE)
            last = now


def watch_on_cpu(seconds: float, what: str, resume_hint: str):
    """A ``StallWatch`` on the CPU backend; elsewhere none (an accelerator's host thread may
    rightly idle while the device works)."""
    if jax.default_backend() != "cpu":
        return contextlib.nullcontext()
    return StallWatch(seconds, what, resume_hint)

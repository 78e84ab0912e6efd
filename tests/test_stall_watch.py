"""The stall watchdog ends an idle process with a message, and lets a busy or a suspended
one go on."""

import signal
import subprocess
import sys
import time

from bayesfm.common.stall_watch import STALL_EXIT_CODE

_SCRIPT = """
import time
from bayesfm.common.stall_watch import StallWatch
watch = StallWatch(1.0, "the test block", "Run it again.", min_cpu_seconds=0.2)
with watch:  # busy: keeps the CPU in use for longer than the stall time
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        pass
print("busy block finished", flush=True)
with watch:  # idle: a stall
    time.sleep(30)
print("not reached")
"""


def test_an_idle_block_ends_the_process_and_a_busy_one_does_not():
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == STALL_EXIT_CODE
    assert done.stdout.strip() == "busy block finished"
    assert "the test block used no CPU for 1 s" in done.stderr
    assert "Run it again." in done.stderr


_SUSPENDED = """
import time
from bayesfm.common.stall_watch import StallWatch
with StallWatch(2.0, "the test block", "Run it again.", min_cpu_seconds=0.2):
    print("entered", flush=True)
    time.sleep(1.0)  # idle, but shorter than the stall time
print("finished", flush=True)
"""


def test_a_suspended_process_is_not_taken_for_a_stalled_one():
    child = subprocess.Popen(
        [sys.executable, "-c", _SUSPENDED],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline().strip() == "entered"
    child.send_signal(signal.SIGSTOP)  # as Ctrl-Z would, for longer than the stall time
    time.sleep(3.0)
    child.send_signal(signal.SIGCONT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert out.strip() == "finished"

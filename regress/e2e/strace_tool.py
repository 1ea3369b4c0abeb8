"""strace for the e2e tests: attach to a process (every thread: the
relay's syncs run in a thread of their own), wait until it is traced,
stop it; and the decorator of the tests that need it."""
import functools
import re
import shutil
import signal
import subprocess

from harness import scaled, wait_for
from skips import need_root, need_tool

STRACE = shutil.which("strace") or "strace"


def strace_pid(pid, *args, out):
    """strace -f attached to pid with args, writing to out; the Popen,
    once the process shows a tracer."""
    p = subprocess.Popen([STRACE, "-f", "-qq", "-o", out, "-p", str(pid)] +
                         list(args), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)

    def traced():
        with open("/proc/%d/status" % pid) as f:
            return re.search(r"^TracerPid:\s+[1-9]", f.read(), re.M)
    try:
        wait_for(traced, scaled(10), "strace attached to pid %d" % pid)
    except BaseException:
        strace_stop(p)
        raise
    return p


def strace_stop(p):
    p.send_signal(signal.SIGINT)
    try:
        p.wait(scaled(10))
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def strip_pid(line):
    """A line of strace -f without the thread id it starts with."""
    return re.sub(r"^\d+\s+", "", line)


def needs_strace(fn):
    """The test needs root, and strace, which .ci/run installs: without
    it the test fails under CI (skips.need_tool), never skips there."""
    @functools.wraps(fn)
    def wrapper(*args, **kw):
        need_root()
        need_tool("strace")
        return fn(*args, **kw)
    return wrapper

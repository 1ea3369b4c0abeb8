"""Relay mode in front of Postfix's smtp-sink, a real SMTP server: what
smtp-source sends arrives, every message, and the queue drains."""
import os
import re
import shutil
import subprocess

import pytest

from harness import free_port, missing, scaled, wait_for
from relay_harness import queue_files, relay_conf  # noqa: F401
from relay_harness import relay_factory, upstream_factory, world  # noqa


def tool(name):
    path = shutil.which(name) or "/usr/sbin/" + name
    if not os.access(path, os.X_OK):
        missing("no %s (Debian package postfix)" % name)
    return path


def sink_count(path):
    """The last message counter smtp-sink -c wrote."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 200))
            tail = f.read()
    except OSError:
        return 0
    counts = re.findall(rb"mesg=(\d+)", tail)
    return int(counts[-1]) if counts else 0


def test_relay_to_smtp_sink(world, relay_factory, tmp_path):
    sink, source = tool("smtp-sink"), tool("smtp-source")
    n = 300
    port = free_port()
    out = str(tmp_path / "sink.out")
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    with open(out, "wb") as f:
        s = subprocess.Popen([sink] + user + ["-c", "127.0.0.1:%d" % port,
                              "100"], stdin=subprocess.DEVNULL, stdout=f,
                             stderr=subprocess.STDOUT)
    try:
        conf, queue = relay_conf(world)
        d = relay_factory("-f", conf, "-c", "relay",
                          second="127.0.0.1:%d" % port)
        p = subprocess.run([source, "-s", "5", "-m", str(n), "-l", "2048",
                            "-f", "sender@example.com",
                            "-t", "rcpt@example.com",
                            "127.0.0.1:%d" % d.port],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=scaled(60))
        assert p.returncode == 0, p.stderr
        assert len(d.log_grep(r"event=queued ")) == n
        wait_for(lambda: sink_count(out) >= n, scaled(30),
                 "%d messages at smtp-sink" % n, interval=0.05)
        assert sink_count(out) == n
        wait_for(lambda: queue_files(queue) == [], scaled(10),
                 "an empty queue", interval=0.05)
        assert len(d.log_grep(r"event=attempt .*result=delivered")) == n
    finally:
        s.terminate()
        s.wait(timeout=10)

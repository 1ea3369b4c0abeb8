"""Many sessions at once, and a worker killed under load: the parent
respawns it, the other worker's sessions go on (SPEC section 1)."""
import os
import re
import resource
import shutil
import signal
import time

import pytest

from skips import need_nofile
from harness import (SMTPD_BIN, Client, SMTPError, check, cmdline,
                     debug_block, message, scaled, sigstop, wait_for)


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        if hard != resource.RLIM_INFINITY and hard < n:
            # Root may raise the hard limit too.
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
                return
            except (ValueError, OSError):
                need_nofile(hard, n)
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


def test_500_concurrent_sessions(smtpd_factory):
    n = 500
    raise_nofile(n + 200)
    d = smtpd_factory()
    t0 = time.monotonic()
    budget = scaled(60)
    clients = []
    for i in range(n):
        clients.append(d.client(greet=False))
    # All 500 are connected: each one gets its 220.
    for c in clients:
        c.greeting()
    for c in clients:
        c.send(b"EHLO c.example\r\n")
    for c in clients:
        r = c.reply()
        assert r.code == 250 and r.lines[-1] == "HELP", r.raw
    for i, c in enumerate(clients):
        c.send(b"MAIL FROM:<a%d@example.com>\r\nRCPT TO:<b%d@example.com>"
               b"\r\nDATA\r\n" % (i, i))
    for c in clients:
        check(c.reply(), 250, "2.1.0")
        check(c.reply(), 250, "2.1.5")
        check(c.reply(), 354)
    assert time.monotonic() - t0 < budget
    expected = {}
    for i, c in enumerate(clients):
        wire, lines = message("concurrent %d" % i, ["from session %d" % i])
        expected[i] = debug_block(lines)
        c.send(wire + b".\r\n")
    ids = set()
    for c in clients:
        r = check(c.reply(), 250, "2.0.0")
        ids.add(r.message)
    assert len(ids) == n
    # Every session is still open at this point: each answers a NOOP.
    for c in clients:
        c.send(b"NOOP\r\n")
    for c in clients:
        check(c.reply(), 250, "2.0.0")
    for c in clients:
        c.send(b"QUIT\r\n")
    for c in clients:
        check(c.reply(), 221, "2.0.0")
        assert c.wait_closed()
    assert time.monotonic() - t0 < budget
    blocks = d.wait_blocks(n, timeout=scaled(20))
    assert len(blocks) == n
    found = {}
    for b in blocks:
        m = re.search(r"^Subject: concurrent (\d+)$", b, re.M)
        assert m, b
        found[int(m.group(1))] = b
    assert found == expected


def other(pids, pid):
    rest = [p for p in pids if p != pid]
    assert len(rest) == 1, (pids, pid)
    return rest[0]


def connect_while_stopped(d, stopped, timeout):
    """Connect while worker `stopped` is SIGSTOPped: the connection can
    only be taken by another worker.  Returns the greeted client."""
    try:
        sigstop(stopped)
        c = Client(d.port, timeout=timeout)
        d.clients.append(c)
        c.greeting()
    finally:
        os.kill(stopped, signal.SIGCONT)
    return c


def test_worker_kill_9(smtpd_factory):
    d = smtpd_factory(workers=2)
    d.allow_child_death = True
    a_pid, b_pid = d.wait_workers(2)

    # c1 on one worker (A), c2 on the other (B).
    c1 = d.client()
    c1.ehlo()
    a = d.worker_of(c1)
    b = other([a_pid, b_pid], a)
    c2 = connect_while_stopped(d, a, scaled(5))
    assert d.worker_of(c2) == b
    c2.ehlo()
    c2.expect("MAIL FROM:<a@example.com>", 250, "2.1.0")
    c2.expect("RCPT TO:<b@example.com>", 250, "2.1.5")

    t0 = time.monotonic()
    os.kill(a, signal.SIGKILL)

    # The parent logs the death and starts a new worker.
    wait_for(lambda: d.log_grep(r"event=child-died role=session pid=%d "
                                r"signal=9( |$)" % a),
             scaled(1), "child-died of the killed worker")
    new = wait_for(lambda: [p for p in d.sessions() if p not in (a, b)],
                   max(0.01, t0 + scaled(1) - time.monotonic()),
                   "a new session worker")
    assert len(new) == 1
    new = new[0]
    assert d.log_grep(r"event=spawn role=session pid=%d$" % new)
    # ... and it serves: with B stopped, only the new one can take this.
    left = t0 + scaled(1) - time.monotonic()
    assert left > 0, "no time left to see the new worker serve"
    c3 = connect_while_stopped(d, b, left)
    elapsed = time.monotonic() - t0
    assert d.worker_of(c3) == new
    assert elapsed <= scaled(1), "new worker served after %.3fs" % elapsed

    # The killed worker's session is gone; the other one's goes on.
    assert c1.wait_closed(scaled(5))
    c2.expect("DATA", 354)
    wire, lines = message("survivor")
    c2.send(wire + b".\r\n")
    check(c2.reply(), 250, "2.0.0")
    c2.expect("QUIT", 221, "2.0.0")
    c3.ehlo()
    c3.send_message(message("new worker")[0])
    c3.expect("QUIT", 221, "2.0.0")
    blocks = d.wait_blocks(2)
    assert blocks == [debug_block(lines),
                      debug_block(message("new worker")[1])]
    # Exactly one death was logged, and the pool is whole again.
    assert len(d.log_grep(r"event=child-died")) == 1
    assert sorted(d.wait_workers(2)) == sorted([b, new])
    assert d.stop() == 0


def test_only_worker_kill_9(smtpd_factory):
    """With one worker, a kill -9 leaves no one to accept: a new worker
    must be serving within one second of the kill."""
    d = smtpd_factory(workers=1)
    d.allow_child_death = True
    (w,) = d.wait_workers(1)
    c1 = d.client()
    c1.ehlo()
    t0 = time.monotonic()
    os.kill(w, signal.SIGKILL)
    assert c1.wait_closed(scaled(2))
    c2 = Client(d.port, timeout=max(0.01, t0 + scaled(1) - time.monotonic()))
    d.clients.append(c2)
    c2.greeting()
    elapsed = time.monotonic() - t0
    assert elapsed <= scaled(1), "served after %.3fs" % elapsed
    new = d.worker_of(c2)
    assert new != w and cmdline(new) == "smtpd: session"
    assert d.log_grep(r"event=child-died role=session pid=%d signal=9" % w)
    c2.ehlo()
    c2.send_message(message("after kill")[0])
    d.wait_blocks(1)


def test_relay_kill_9(smtpd_factory):
    """The relay killed: a new one starts, the workers get channels to
    it, and messages are accepted again (a client that got 451 in
    between retries)."""
    d = smtpd_factory(workers=2)
    d.allow_child_death = True
    wait_for(lambda: len(d.relays()) == 1, scaled(5), "the relay")
    (relay,) = d.relays()
    c = d.client()
    c.ehlo()
    c.send_message(message("before")[0])
    d.wait_blocks(1)
    os.kill(relay, signal.SIGKILL)
    wait_for(lambda: d.log_grep(r"event=child-died role=relay pid=%d "
                                r"signal=9" % relay), scaled(2),
             "child-died of the relay")
    new = wait_for(lambda: [p for p in d.relays() if p != relay],
                   scaled(2), "a new relay")
    assert len(new) == 1
    # Retry like a client would on 451, for a bounded time.
    wire, lines = message("after")
    deadline = time.monotonic() + scaled(3)
    codes = []
    for _ in range(300):
        c.expect("MAIL FROM:<a@example.com>", 250, "2.1.0")
        c.expect("RCPT TO:<b@example.com>", 250, "2.1.5")
        r = c.cmd("DATA")
        if r.code == 354:
            c.send(wire + b".\r\n")
            r = c.reply()
        codes.append(r.code)
        if r.code == 250:
            break
        assert r.code == 451 and r.enh == "4.3.0", r.raw
        c.expect("RSET", 250, "2.0.0")
        assert time.monotonic() < deadline, "still refused: %s" % codes
        time.sleep(0.02)    # a client's retry interval, not a wait
    assert codes[-1] == 250
    blocks = d.wait_blocks(2)
    assert blocks[1] == debug_block(lines)
    c.expect("QUIT", 221, "2.0.0")
    assert len(d.log_grep(r"event=child-died")) == 1


def test_respawn_after_the_binary_was_replaced(smtpd_factory, tmp_path):
    """make install over a running daemon puts a new file where the old
    binary was: a worker that dies later must still be replaced (by the
    binary the parent runs, or by the new one, but replaced)."""
    binary = os.path.join(str(tmp_path), "smtpd")
    shutil.copy2(SMTPD_BIN, binary)
    d = smtpd_factory(workers=1, binary=binary)
    d.allow_child_death = True
    (w,) = d.wait_workers(1)
    os.unlink(binary)
    shutil.copy2(SMTPD_BIN, binary)
    t0 = time.monotonic()
    os.kill(w, signal.SIGKILL)
    c = Client(d.port, timeout=scaled(3))
    d.clients.append(c)
    try:
        c.greeting()
    except SMTPError:
        raise AssertionError(
            "no worker %.1fs after the kill; log:\n%s" % (
                time.monotonic() - t0,
                "\n".join(d.log_lines()[-6:])))
    c.ehlo()
    c.send_message(message("after upgrade")[0])
    d.wait_blocks(1)

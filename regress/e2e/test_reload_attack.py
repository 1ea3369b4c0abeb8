"""Reload under attack (SPEC 12): a storm of SIGHUPs while kept
sessions send and the relay delivers, checked from the outside: no 421,
every acknowledged message at the upstream, the parent's descriptors
and memory as they were, no zombie and no retired worker left.

Clients: smtplib in threads over kept connections, on loopback; the
upstream is the recording regress/lib/upstream.py.
"""
import os
import signal
import smtplib
import subprocess
import threading
import time

from harness import (SANITIZED, SMTPD_BIN, VALGRIND, children_of, free_port,
                     proc_status, scaled, wait_for)
from relay_harness import (queue_files, relay_conf,  # noqa: F401
                           relay_factory, upstream_factory, world)

CLIENTS = 8
RELOADS = 30


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def zombies(pid):
    out = []
    for c in children_of(pid):
        try:
            if proc_status(c).get("State", "").startswith("Z"):
                out.append(c)
        except OSError:
            pass
    return out


def rss_kb(pid):
    return int(proc_status(pid)["VmRSS"].split()[0])


class Sender(threading.Thread):
    """A kept smtplib connection sending numbered messages until told
    to stop; the Subject of each one acknowledged with 250."""

    def __init__(self, port, n):
        super().__init__(daemon=True)
        self.n = n
        self.stop = threading.Event()
        self.acked = []
        self.errors = []
        self.conn = smtplib.SMTP("127.0.0.1", port, timeout=scaled(30))
        self.conn.ehlo("keep.example")

    def run(self):
        i = 0
        try:
            while not self.stop.is_set():
                subj = "s%d-%d" % (self.n, i)
                msg = "Subject: %s\r\n\r\nkept\r\n" % subj
                r = self.conn.sendmail("a@example.com", ["b@example.net"],
                                       msg)
                if r != {}:
                    self.errors.append(r)
                    return
                self.acked.append(subj)
                i += 1
            code, text = self.conn.noop()
            if code != 250:
                self.errors.append(("NOOP", code, text))
            self.conn.quit()
        except (smtplib.SMTPException, OSError) as e:
            self.errors.append(repr(e))


def test_reload_storm_relay_delivers(relay_factory, world, upstream_factory):
    """30 SIGHUPs, 50 ms apart, half of them changing queue-retry,
    while 8 kept sessions send and the relay delivers."""
    up = upstream_factory()
    lines = ["listen on 127.0.0.1 port %d", "relay-domains example.net",
             "upstream 127.0.0.1 port %d" % up.port]
    port = free_port()
    lines[0] = lines[0] % port
    conf, queue = relay_conf(world, lines=lines + ["queue-retry 1m",
                                                   "workers 2"])
    d = relay_factory("-f", conf, "-c", "relay", listen="", wait=False)
    d.port = port
    d.start()
    d.wait_workers(2)
    # Warm up: one message through, so that lazy allocations are done.
    s = smtplib.SMTP("127.0.0.1", port, timeout=scaled(20))
    s.sendmail("a@example.com", ["b@example.net"], "Subject: w\r\n\r\nx\r\n")
    s.quit()
    up.wait_messages(1)
    pid = d.pid
    d.send_signal(signal.SIGHUP)
    wait_for(lambda: len(d.log_grep("event=reload result=applied")) == 1,
             scaled(10))
    wait_for(lambda: len(d.sessions()) == 2, scaled(10), "old to go")
    fd0, rss0 = fds(pid), rss_kb(pid)
    senders = [Sender(port, i) for i in range(CLIENTS)]
    for t in senders:
        t.start()
    p2 = free_port()
    for i in range(RELOADS):
        # Odd ones add a listener and a worker, even ones take them away.
        extra = (["listen on 127.0.0.1 port %d" % p2, "workers 3"]
                 if i % 2 == 0 else ["workers 2"])
        relay_conf(world, lines=lines + extra + ["queue-retry %dm"
                                                 % (1 + i % 2)])
        d.send_signal(signal.SIGHUP)
        time.sleep(0.05)
    wait_for(lambda: len(d.log_grep("event=reload result=")) >= RELOADS + 1,
             scaled(30), "every reload's result")
    time.sleep(1)
    for t in senders:
        t.stop.set()
    for t in senders:
        t.join(scaled(30))
    errors = [e for t in senders for e in t.errors]
    assert errors == [], errors
    acked = {x for t in senders for x in t.acked}

    def delivered():
        got = set()
        for m in up.messages():
            for line in m["data"].split(b"\r\n"):
                if line.startswith(b"Subject: "):
                    got.add(line[9:].decode())
        return got >= acked
    wait_for(delivered, scaled(60), "every acknowledged message upstream")
    wait_for(lambda: len(d.sessions()) == 2, scaled(20),
             "the retired workers to exit")
    wait_for(lambda: not zombies(pid), scaled(10), "no zombie")
    assert fds(pid) == fd0
    # (A sanitizer's quarantine keeps what is freed: no measure there.)
    assert SANITIZED or VALGRIND or rss_kb(pid) < rss0 + 2048
    assert not d.log_grep(r"event=kill|child-died|worker-violation")
    sids = [m.group(1) for m in d.log_grep(r"event=connect session=(\S+)")]
    assert len(sids) == len(set(sids)) >= CLIENTS + 1


# --------------------------------------------------------------------------
# reloads an operator gets wrong, or does at a bad moment

import shutil  # noqa: E402
import socket  # noqa: E402

from harness import Client, check  # noqa: E402
from test_upstream_tls import certs  # noqa: E402,F401
from tls_certs import users_file  # noqa: E402


def start_plain(relay_factory, world, lines):
    port = free_port()
    conf, _ = relay_conf(world, lines=["listen on 127.0.0.1 port %d" % port]
                         + lines)
    d = relay_factory("-f", conf, "-c", "relay", listen="", wait=False)
    d.port = port
    d.start()
    d.conf_path = conf
    return d


def rewrite(world, d, lines):
    relay_conf(world, lines=["listen on 127.0.0.1 port %d" % d.port]
               + lines)


def hup(d):
    n = len(d.log_grep(r"event=reload result="))
    d.send_signal(signal.SIGHUP)
    wait_for(lambda: len(d.log_grep(r"event=reload result=")) > n,
             scaled(10), "the reload's result")
    return d.log_grep(r"event=reload result=")[-1].string


def test_reload_port_in_use(relay_factory, world, upstream_factory):
    up = upstream_factory()
    base = ["relay-domains example.net", "upstream 127.0.0.1 port %d"
            % up.port]
    d = start_plain(relay_factory, world, base)
    workers = set(d.wait_workers(2))
    busy = socket.socket()
    busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    p2 = busy.getsockname()[1]
    rewrite(world, d, base + ["listen on 127.0.0.1 port %d" % p2])
    assert "result=failed" in hup(d)
    assert d.log_grep(r"event=config-error listen on 127.0.0.1:%d: "
                      r"Address already in use" % p2), d.log_lines()[-5:]
    assert set(d.sessions()) == workers
    busy.close()
    with Client(d.port) as c:
        check(c.reply(), 220)


def test_reload_mismatched_key(relay_factory, world, certs):
    """A renewed certificate with the key of another: the reload fails
    and says why; the workers (and their certificate) stay."""
    cert = os.path.join(world.path, "c.pem")
    key = os.path.join(world.path, "c.key")
    shutil.copy(certs.path("server.pem"), cert)
    shutil.copy(certs.path("server.key"), key)
    base = ["tls certificate %s key %s" % (cert, key)]
    d = start_plain(relay_factory, world, base)
    workers = set(d.wait_workers(2))
    shutil.copy(certs.path("other.key"), key)
    assert "result=failed" in hup(d)
    assert d.log_grep(r"event=config-error tls: .*c\.pem or .*c\.key: "
                      r".*key values mismatch")
    assert set(d.sessions()) == workers


def test_reload_users_unusable(relay_factory, world, certs):
    """A users file that is a directory, gone, or readable by others:
    each reload fails, names the file, and keeps the workers."""
    users = users_file(os.path.join(world.path, "users"), {"u": "pw-1234"})
    base = ["tls certificate %s key %s" % certs.pair("server"),
            "users " + users]
    d = start_plain(relay_factory, world, base)
    workers = set(d.wait_workers(2))
    os.unlink(users)
    os.mkdir(users, 0o700)
    assert "result=failed" in hup(d)
    assert d.log_grep(r"event=config-error %s: not a regular file" % users)
    os.rmdir(users)
    assert "result=failed" in hup(d)
    assert d.log_grep(r"event=config-error %s: No such file" % users)
    users_file(users, {"u": "pw-1234"}, mode=0o644)
    assert "result=failed" in hup(d)
    assert d.log_grep(r"event=config-error %s: readable by others" % users)
    n = len(d.log_grep(r"event=config-error users: %s cannot be used"
                       % users))
    assert n == 3
    assert set(d.sessions()) == workers


def test_reload_mid_delivery(relay_factory, world, upstream_factory):
    """A reload that replaces the upstream while the relay waits for the
    old one's reply to the data: that message is delivered there once
    and removed; the next goes to the new upstream."""
    up = upstream_factory("--data-delay", "3000")
    up2 = upstream_factory()
    base = ["relay-domains example.net", "queue-retry 1s"]
    d = start_plain(relay_factory, world, base + [
        "upstream 127.0.0.1 port %d" % up.port])
    s = smtplib.SMTP("127.0.0.1", d.port, timeout=scaled(20))
    s.sendmail("a@example.com", ["b@example.net"], "Subject: mid\r\n\r\nx\r\n")
    up.wait_messages(1)
    rewrite(world, d, base + ["upstream 127.0.0.1 port %d" % up2.port])
    assert "result=applied" in hup(d)
    s.sendmail("a@example.com", ["b@example.net"], "Subject: two\r\n\r\nx\r\n")
    s.quit()
    up2.wait_messages(1)
    d.wait_log(r"event=removed ", count=2, timeout=scaled(20))
    assert queue_files(os.path.join(world.path, "queue")) == []
    assert [b"Subject: mid" in m["data"] for m in up.messages()] == [True]
    assert [b"Subject: two" in m["data"] for m in up2.messages()] == [True]


def test_reload_removes_listener_with_session_then_readds(
        relay_factory, world, upstream_factory):
    up = upstream_factory()
    base = ["relay-domains example.net", "upstream 127.0.0.1 port %d"
            % up.port]
    p2 = free_port()
    extra = ["listen on 127.0.0.1 port %d" % p2]
    d = start_plain(relay_factory, world, base + extra)
    d.wait_workers(2)
    s = smtplib.SMTP("127.0.0.1", p2, timeout=scaled(20))
    s.ehlo("x.example")
    rewrite(world, d, base)
    assert "closed=1" in hup(d)
    wait_for(lambda: socket_refused(p2), scaled(10), "p2 closed")
    assert s.sendmail("a@example.com", ["b@example.net"],
                      "Subject: one\r\n\r\nx\r\n") == {}
    rewrite(world, d, base + extra)
    assert "added=1" in hup(d)
    with Client(p2) as c:
        check(c.reply(), 220)
    assert s.sendmail("a@example.com", ["b@example.net"],
                      "Subject: two\r\n\r\nx\r\n") == {}
    s.quit()
    up.wait_messages(2)


def socket_refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_term_then_hup(relay_factory, world, upstream_factory):
    up = upstream_factory()
    d = start_plain(relay_factory, world, [
        "relay-domains example.net", "upstream 127.0.0.1 port %d" % up.port])
    d.wait_workers(2)
    c = Client(d.port)
    check(c.reply(), 220)
    c.send(b"EHLO x\r\n")
    c.reply()
    d.send_signal(signal.SIGTERM)
    d.wait_log(r"event=stop-requested")
    d.send_signal(signal.SIGHUP)
    d.send_signal(signal.SIGHUP)
    assert d.wait_exit(scaled(20)) == 0
    assert not d.log_grep(r"event=reload")
    d.expect_rc = 0


def test_users_directory_refused_at_start(world):
    """The same check when the daemon starts: a users file that is a
    directory (it opened, read as empty, and left AUTH with no user)
    is an error of the configuration."""
    users = world.sub("users", 0o700)
    conf = world.conf(["listen on 127.0.0.1 port %d" % free_port(),
                       "users " + users])
    p = subprocess.run([SMTPD_BIN, "-t", "-f", conf], capture_output=True,
                       timeout=scaled(20))
    assert p.returncode == 1, p
    assert b"%s: not a regular file" % users.encode() in p.stderr

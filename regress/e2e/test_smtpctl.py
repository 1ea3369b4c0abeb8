"""smtpctl, sendmail and mailq (SPEC section 12): the control socket
served by the relay, the queue commands on real queued mail, the
permissions of SO_PEERCRED, mail submitted by an unprivileged user,
and the metrics checked by a real OpenMetrics parser."""
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import time

import pytest

from harness import ROOT, free_port, scaled, wait_for
from relay_harness import (make_message, relay_conf, relay_factory,
                           smtp_send, upstream_factory, world)
from skips import missing, need_root

SMTPCTL = os.path.join(os.path.dirname(os.environ.get(
    "SMTPD_BIN", os.path.join(ROOT, "build", "smtpd"))), "smtpctl")
HOST = "mail.test.example"

__all__ = ["relay_factory", "upstream_factory", "world"]


def nobody():
    return pwd.getpwnam("nobody")


def as_user(pw):
    def drop():
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    return drop


class Ctl:
    """smtpctl (and its sendmail and mailq links) for one daemon."""

    def __init__(self, world, sock):
        self.sock = sock
        # Copies the unprivileged user can run, whatever the tree's modes.
        self.bin = os.path.join(world.path, "smtpctl")
        shutil.copy(SMTPCTL, self.bin)
        os.chmod(self.bin, 0o755)
        for name in ("sendmail", "mailq"):
            link = os.path.join(world.path, name)
            if not os.path.exists(link):
                os.symlink(self.bin, link)
        self.dir = world.path

    def run(self, *args, user=None, name="smtpctl", stdin=None, env=None):
        e = {"PATH": "/usr/bin:/bin", "SMTPD_CONTROL_SOCKET": self.sock}
        e.update(env or {})
        argv = [os.path.join(self.dir, name)] + list(args)
        return subprocess.run(argv, input=stdin, capture_output=True,
                              env=e, timeout=scaled(20), cwd="/",
                              preexec_fn=as_user(user) if user else None)

    def ok(self, *args, **kw):
        r = self.run(*args, **kw)
        assert r.returncode == 0, (args, r.returncode, r.stderr)
        return r.stdout.decode()

    def queue(self):
        return json.loads(self.ok("show", "queue", "--json"))


def start(world, relay_factory, upstream_port, lines=()):
    sock = os.path.join(world.path, "ctl.sock")
    conf, queue = relay_conf(world, lines=[
        "hostname " + HOST, "control-socket " + sock,
        "queue-retry 300s"] + list(lines))
    d = relay_factory("-f", conf, "-c", "relay", hostname=HOST,
                      second="127.0.0.1:%d" % upstream_port)
    return d, Ctl(world, sock)


def by_id(q, qid):
    return [m for m in q if m["id"] == qid]


def test_queue_commands_with_the_upstream_down(world, upstream_factory,
                                               relay_factory):
    need_root()
    port = free_port()
    d, ctl = start(world, relay_factory, port)
    ids = [smtp_send(d.port, "sender@example.com",
                     ["a%d@example.net" % i, "b%d@example.net" % i],
                     make_message(i)) for i in range(4)]
    d.wait_log(r"event=upstream-unreachable")
    q = ctl.queue()
    assert sorted(m["id"] for m in q) == sorted(ids)
    for m in q:
        assert m["sender"] == "sender@example.com" and not m["held"]
        assert m["size"] > 0 and m["age"] >= 0
        assert [r["state"] for r in m["recipients"]] == ["queued"] * 2
    text = ctl.ok("show", "queue")
    assert ids[0] in text and "<a0@example.net> queued" in text
    shown = ctl.ok("show", "message", ids[0])
    assert "Subject: msg 0" in shown and "a0@example.net" in shown

    ctl.ok("hold", ids[0])
    assert by_id(ctl.queue(), ids[0])[0]["held"] is True
    assert " held" in ctl.ok("show", "queue")
    ctl.ok("remove", ids[1])
    assert not by_id(ctl.queue(), ids[1])
    d.wait_log(r"event=removed queue_id=%s reason=admin" % ids[1])
    ctl.ok("bounce", ids[2])
    d.wait_log(r"event=bounce queue_id=\S+ original_queue_id=%s" % ids[2])
    q = ctl.queue()
    assert not by_id(q, ids[2])
    dsn = [m for m in q if m["id"] not in ids]
    assert len(dsn) == 1 and dsn[0]["sender"] == ""
    assert dsn[0]["recipients"][0]["address"] == "sender@example.com"
    r = ctl.run("remove", "0123456789ABCDEF")
    assert r.returncode == 1 and b"no such message" in r.stderr
    assert r.stderr.count(b"\n") == 1

    # An upstream that defers everything: 451, and 300 s of back-off.
    busy = upstream_factory("--mail-code", "451", port=port)
    ctl.ok("flush")
    wait_for(lambda: all(r["state"] == "deferred" for m in ctl.queue()
                         if not m["held"] for r in m["recipients"]),
             scaled(10), "every recipient deferred")
    for m in ctl.queue():
        for r in m["recipients"]:
            if not m["held"]:
                assert r["last_reply"].startswith("451")
                assert r["next_attempt"] > time.time() + 200
    busy.stop()

    # The upstream comes back; the back-off is long, flush is now.
    up = upstream_factory(port=port)
    t0 = time.monotonic()
    ctl.ok("flush")
    got = up.wait_messages(2, timeout=scaled(10))
    assert time.monotonic() - t0 < scaled(2), "flush took too long"
    assert sorted(r for m in got for r in m["rcpts"]) == [
        "a3@example.net", "b3@example.net", "sender@example.com"]
    # The held one stays until it is released.
    assert [m["id"] for m in ctl.queue()] == [ids[0]]
    r = ctl.run("flush", ids[0])
    assert r.returncode == 1 and b"held" in r.stderr
    ctl.ok("release", ids[0])
    up.wait_messages(3, timeout=scaled(5))
    wait_for(lambda: ctl.queue() == [], scaled(5), "an empty queue")


def test_pause_and_resume_delivery(world, upstream_factory, relay_factory):
    need_root()
    up = upstream_factory()
    d, ctl = start(world, relay_factory, up.port)
    ctl.ok("pause", "delivery")
    qid = smtp_send(d.port, "s@example.com", ["r@example.net"],
                    make_message(1))
    time.sleep(0.5)     # a negative check: nothing may arrive meanwhile
    assert up.messages() == [] and by_id(ctl.queue(), qid)
    assert "delivery_paused yes" in ctl.ok("show", "stats")
    ctl.ok("resume", "delivery")
    up.wait_messages(1, timeout=scaled(5))


def sendmail_message(to, subject="cron job"):
    return ("To: %s\nCc: Other <cc@example.net>\nBcc: hidden@example.net\n"
            "Subject: %s\n\nline one\n.\nnot read without -i\n"
            % (to, subject)).encode()


def test_sendmail_as_an_unprivileged_user(world, upstream_factory,
                                          relay_factory):
    need_root()
    up = upstream_factory()
    d, ctl = start(world, relay_factory, up.port)
    pw = nobody()
    r = ctl.run("-t", name="sendmail", user=pw,
                stdin=sendmail_message("Root <root@example.net>"))
    assert r.returncode == 0, r.stderr
    m = up.wait_messages(1)[0]
    assert m["sender"] == "nobody@" + HOST
    assert sorted(m["rcpts"]) == ["cc@example.net", "hidden@example.net",
                                  "root@example.net"]
    assert b"Bcc:" not in m["data"] and b"Subject: cron job" in m["data"]
    assert b"line one\r\n" in m["data"]
    assert b"not read" not in m["data"]
    assert re.search(rb"^From: <nobody@", m["data"], re.M)
    d.wait_log(r"event=message queue_id=\S+ source=local uid=65534 "
               r"user=nobody from=<nobody@%s>" % re.escape(HOST))

    # -i: a lone "." is text; -f for another address is refused.
    r = ctl.run("-i", "-oi", "-odb", "x@example.net", name="sendmail",
                user=pw, stdin=b"Subject: dots\n\n.\nafter\n")
    assert r.returncode == 0, r.stderr
    m = up.wait_messages(2)[-1]
    assert b"\r\n..\r\nafter\r\n" in m["data"] or \
        b"\r\n.\r\nafter\r\n" in m["data"]
    r = ctl.run("-f", "boss@example.com", "x@example.net",
                name="sendmail", user=pw, stdin=b"Subject: x\n\nx\n")
    assert r.returncode == 77 and b"sender" in r.stderr
    # root may set the sender.
    ctl.ok("-f", "boss@example.com", "-F", "The Boss", "x@example.net",
           name="sendmail", stdin=b"Subject: y\n\ny\n")
    m = up.wait_messages(3)[-1]
    assert m["sender"] == "boss@example.com"
    assert b'From: "The Boss" <boss@example.com>' in m["data"]


def test_sendmail_folded_fields_and_line_breaks(world, upstream_factory,
                                                relay_factory):
    """-t reads a folded To: field (RFC 5322 2.2.3); an argument with a line break, which would start another
    line of the request, is refused with 64 (EX_USAGE) and nothing is
    queued."""
    need_root()
    up = upstream_factory()
    d, ctl = start(world, relay_factory, up.port)
    r = ctl.run("-t", name="sendmail", user=nobody(),
                stdin=b"To: Folded\n <folded@example.net>,\n"
                      b"\tsecond@example.net\nSubject: f\n\nbody\n")
    assert r.returncode == 0, r.stderr
    m = up.wait_messages(1)[0]
    assert sorted(m["rcpts"]) == ["folded@example.net",
                                  "second@example.net"]
    for args in (("x@example.net\nrcpt y@example.net",),
                 ("-F", "Name\nBcc: z@example.net", "x@example.net"),
                 ("-f", "a@b\nrcpt c@d", "x@example.net")):
        r = ctl.run(*args, name="sendmail", stdin=b"Subject: x\n\nx\n")
        assert r.returncode == 64, (args, r)
        assert b"control character" in r.stderr, r.stderr
    assert ctl.queue() == [] and len(up.messages()) == 1


def test_sendmail_bcc_then_unterminated_line(world, upstream_factory,
                                             relay_factory):
    """Found by fuzz_sendmail_hdr: a Bcc: field cut out before a last
    line with no line end left the old bytes behind it, read as another
    Bcc: field without a colon (sendmail -t crashed)."""
    need_root()
    up = upstream_factory()
    d, ctl = start(world, relay_factory, up.port)
    r = ctl.run("-t", "-i", name="sendmail", user=nobody(),
                stdin=b"To: x@example.net\nBcc: \nbc")
    assert r.returncode == 0, r
    m = up.wait_messages(1)[0]
    assert m["rcpts"] == ["x@example.net"]
    assert b"Bcc" not in m["data"] and b"\r\nbc\r\n" in m["data"]


def closed(sock):
    """Whether the peer closed sock (EOF waiting), without blocking."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False


def test_control_clients_bounded(world, upstream_factory, relay_factory):
    """At most 64 control clients at once (CTL_CONNS_MAX, relay/control.h):
    of 70 silent ones, 6 are closed at once and logged, 64 wait; once
    they are gone smtpctl is served again."""
    up = upstream_factory()
    d, ctl = start(world, relay_factory, up.port)
    conns = []
    try:
        for _ in range(70):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(ctl.sock)
            conns.append(c)
        wait_for(lambda: sum(map(closed, conns)) == 6, scaled(10),
                 "6 of 70 control clients closed")
        d.wait_log(r"event=control-busy clients=64")
        assert sum(map(closed, conns)) == 6
    finally:
        for c in conns:
            c.close()
    wait_for(lambda: ctl.run("show", "stats").returncode == 0, scaled(10),
             "smtpctl to be served again")


def test_sendmail_bs(world, upstream_factory, relay_factory):
    need_root()
    up = upstream_factory()
    d, ctl = start(world, relay_factory, up.port)
    script = (b"EHLO me\r\nMAIL FROM:<nobody@%s>\r\nRCPT TO:<r@example.net>"
              b"\r\nDATA\r\nSubject: bs\r\n\r\n..dot\r\n.\r\nQUIT\r\n"
              % HOST.encode())
    r = ctl.run("-bs", name="sendmail", user=nobody(), stdin=script)
    assert r.returncode == 0
    codes = [l[:3] for l in r.stdout.decode().splitlines()]
    assert codes == ["220", "250", "250", "250", "354", "250", "221"], \
        r.stdout
    m = up.wait_messages(1)[0]
    assert m["sender"] == "nobody@" + HOST
    assert b"\r\n.dot\r\n" in m["data"]      # unstuffed, once


def test_mailq_and_permissions(world, upstream_factory, relay_factory):
    need_root()
    port = free_port()
    d, ctl = start(world, relay_factory, port)
    qid = smtp_send(d.port, "s@example.com", ["r@example.net"],
                    make_message(1))
    out = ctl.ok(name="mailq")
    assert qid in out and "<r@example.net>" in out
    pw = nobody()
    for args in (("show", "queue"), ("flush",), ("remove", qid),
                 ("reload",), ("log", "verbose"), ("show", "metrics")):
        r = ctl.run(*args, user=pw)
        assert r.returncode == 1, args
        assert b"permission denied" in r.stderr and \
            r.stderr.count(b"\n") == 1, (args, r.stderr)
    r = ctl.run(name="mailq", user=pw)
    assert r.returncode == 1
    assert by_id(ctl.queue(), qid), "nothing was removed"
    r = ctl.run("frobnicate")
    assert r.returncode == 1 and b"unknown command" in r.stderr


def test_control_group(world, upstream_factory, relay_factory):
    need_root()
    port = free_port()
    pw = nobody()
    import grp
    group = grp.getgrgid(pw.pw_gid).gr_name
    d, ctl = start(world, relay_factory, port,
                   lines=["control-group " + group])
    assert json.loads(ctl.ok("show", "queue", "--json", user=pw)) == []
    ctl.ok("-f", "boss@example.com", "x@example.net", name="sendmail",
           user=pw, stdin=b"Subject: y\n\ny\n")


def test_reload_and_log_level(world, upstream_factory, relay_factory):
    need_root()
    up = upstream_factory()
    d, ctl = start(world, relay_factory, up.port)
    out = ctl.ok("reload")
    assert out.startswith("applied")
    d.wait_log(r"event=reload$")
    ctl.ok("log", "verbose")
    d.wait_log(r"event=log-level level=verbose")
    ctl.ok("log", "brief")


def test_sendmail_with_the_daemon_stopped(world):
    need_root()
    sock = os.path.join(world.path, "none.sock")
    shutil.copy(SMTPCTL, os.path.join(world.path, "smtpctl"))
    ctl = Ctl(world, sock)
    r = ctl.run("-t", name="sendmail", user=nobody(),
                stdin=sendmail_message("root@example.net"))
    assert r.returncode == 75
    assert b"not running" in r.stderr
    r = ctl.run("show", "queue")
    assert r.returncode == 1 and b"not running" in r.stderr


def test_metrics_parse_as_openmetrics(world, upstream_factory,
                                      relay_factory):
    need_root()
    try:
        from prometheus_client.openmetrics.parser import \
            text_string_to_metric_families
    except ImportError:
        missing("no prometheus_client (Debian package "
                "python3-prometheus-client)")
    up = upstream_factory()
    d, ctl = start(world, relay_factory, up.port)
    smtp_send(d.port, "s@example.com", ["r@example.net"], make_message(1))
    up.wait_messages(1)
    wait_for(lambda: ctl.queue() == [], scaled(5), "an empty queue")
    text = ctl.ok("show", "metrics")
    assert text.endswith("# EOF\n")
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert all(n.startswith("smtpd_") for n in fams)
    for name in ("smtpd_sessions_open", "smtpd_messages_received",
                 "smtpd_recipients", "smtpd_queue_length",
                 "smtpd_queue_oldest_seconds", "smtpd_upstream_up",
                 "smtpd_auth", "smtpd_delivery_delay_seconds"):
        assert name in fams, name

    def value(fam, sample, **labels):
        for s in fams[fam].samples:
            if s.name == sample and all(s.labels.get(k) == v
                                        for k, v in labels.items()):
                return s.value
        raise AssertionError((fam, sample, labels))
    assert value("smtpd_messages_received",
                 "smtpd_messages_received_total") == 1
    assert value("smtpd_recipients", "smtpd_recipients_total",
                 result="delivered") == 1
    assert value("smtpd_delivery_delay_seconds",
                 "smtpd_delivery_delay_seconds_count") == 1
    assert value("smtpd_upstream_up", "smtpd_upstream_up") == 1
    stats = json.loads(ctl.ok("show", "stats", "--json"))
    assert stats["messages_received"] == 1 and stats["delivered"] == 1


def test_stale_socket_replaced_and_one_in_use_refused(world, upstream_factory,
                                                      relay_factory):
    """A socket left by a daemon that is gone is replaced; one a live
    daemon serves is not taken: named in the file, the start fails."""
    import socket as so
    need_root()
    sock = os.path.join(world.path, "ctl.sock")
    s = so.socket(so.AF_UNIX, so.SOCK_STREAM)
    s.bind(sock)
    s.close()               # the file stays, nobody listens
    port = free_port()
    d, ctl = start(world, relay_factory, port)
    assert ctl.queue() == []
    conf2 = world.conf(["hostname " + HOST, "control-socket " + sock,
                        "queue " + os.path.join(world.path, "queue2")],
                       name="second.conf")
    r = subprocess.run([d.binary, "-d", "-f", conf2, "-c", "relay",
                        "127.0.0.1:%d" % free_port(),
                        "127.0.0.1:%d" % port], capture_output=True,
                       timeout=scaled(20), stdin=subprocess.DEVNULL)
    assert r.returncode == 1
    assert b"second.conf:2: control socket" in r.stderr and \
        b"in use by another smtpd" in r.stderr, r.stderr
    assert ctl.queue() == []

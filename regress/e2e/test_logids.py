"""Logs you can follow (SPEC 9, issue 12 done-when 5): every line of a
session is found with one grep of its session=, every line of a
message with one grep of its queue_id=, and no two sessions share an id,
across the workers of a daemon and across a restart.

The daemon runs in relay mode with three workers (max-sessions 3, so
that concurrent clients spread over them) and -v; the clients are
smtplib, some over STARTTLS with AUTH, some with a refused recipient;
the upstream is the recording regress/lib/upstream.py, which first
defers one recipient (451) and, restarted with the daemon, takes it.
Only the standard library; loopback only; every wait is a poll with a
deadline and every process is killed at teardown.
"""
import os
import re
import smtplib
import subprocess
import threading

import pytest

from harness import LOG_STAMP_RE as LOG_STAMP, free_port, need_tool, scaled
from relay_harness import (default_args, make_message, relay_conf,  # noqa
                           relay_factory, smtp_send, upstream_factory,
                           world)
from tls_certs import ServerCerts, users_file

# The fixtures above (relay_factory, upstream_factory, world) are
# imported so that pytest finds them in this module.

USER = "alice"
PASSWORD = "Alice-l0gs-pw"
SENDER = "author@example.com"
INSIDE = "rcpt@example.com"          # in relay-domains
LATER = "later@example.com"          # deferred by the first upstream
OUTSIDE = "x@elsewhere.org"          # needs AUTH
WORKERS = 3
SID = r"[0-9a-f]{16}"
QID = r"[0-9A-F]{16}"
LINE_RE = re.compile(r"^smtpd\[(\d+)\]: (\w+): event=(\S+)(.*)$")

# Events about one session and about one message: each must name it.
SESSION_EVENTS = {"connect", "disconnect", "helo", "mail", "rcpt",
                  "rcpt-refused", "mail-refused", "tls", "tls-failed",
                  "auth", "refused", "proxy-refused", "timeout",
                  "lifetime", "data-too-slow", "spool-full",
                  "auth-unconfirmed", "message", "data-refused",
                  "overflow", "spool-write", "session-error"}
MESSAGE_EVENTS = {"message", "queued", "attempt", "deferred", "removed",
                  "expired", "bounce", "bounced", "lost", "held",
                  "released", "delivery", "upstream-no-8bitmime",
                  "send-failed"}


@pytest.fixture(scope="module")
def secrets(tmp_path_factory):
    need_tool("openssl")
    d = str(tmp_path_factory.mktemp("logids"))
    certs = ServerCerts(d)
    return certs, users_file(os.path.join(d, "users"), {USER: PASSWORD})


def events(d):
    """(pid, role, event, rest) of every line of d's log."""
    out = []
    for line in d.log_lines():
        m = LINE_RE.match(line)
        if m:
            out.append((int(m.group(1)), m.group(2), m.group(3),
                        m.group(4)))
    return out


def grep(lines, needle):
    """What grep(1) of needle finds: the lines that hold it."""
    return [l for l in lines if needle in l]


def session_ids(d):
    """session= of every connect line of d, in order, with its pid."""
    return [(pid, re.search(r" session=(\S+)", rest).group(1))
            for pid, role, ev, rest in events(d) if ev == "connect"]


def tls_auth_session(port, certs):
    """STARTTLS, a refused recipient before AUTH, then AUTH and a
    message relayed outside; the queue id of its 250."""
    s = smtplib.SMTP("127.0.0.1", port, timeout=scaled(15))
    try:
        s.ehlo("tls.example")
        s.starttls(context=certs.client_context())
        s.ehlo("tls.example")
        s.mail(SENDER)
        code, _ = s.rcpt(OUTSIDE)
        assert code == 550, code
        s.rset()
        s.login(USER, PASSWORD)
        s.mail(SENDER)
        assert s.rcpt(OUTSIDE)[0] == 250
        code, text = s.data(make_message(0, "tls-auth"))
        assert code == 250, (code, text)
        s.quit()
    finally:
        s.close()
    return text.decode().rsplit(" ", 1)[-1]


def refused_session(port):
    """A session with a refused recipient and no message."""
    s = smtplib.SMTP("127.0.0.1", port, timeout=scaled(15))
    try:
        s.ehlo("refused.example")
        s.mail("other@example.org")
        assert s.rcpt(OUTSIDE)[0] == 550
        s.quit()
    finally:
        s.close()


def concurrent_sessions(port, n, tag):
    """n clients at once, each holding its session open until all are
    connected, so that the workers (3 sessions each at most) share
    them; then each sends a message."""
    barrier = threading.Barrier(n, timeout=scaled(20))
    errors = []

    def one(i):
        try:
            s = smtplib.SMTP("127.0.0.1", port, timeout=scaled(20))
            try:
                s.ehlo("c%d.example" % i)
                barrier.wait()
                s.sendmail(SENDER, [INSIDE], make_message(i, tag))
                s.quit()
            finally:
                s.close()
        except Exception as e:          # reported below, in the test
            errors.append(repr(e))
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(scaled(60))
    assert not errors, errors


def start(relay_factory, conf, port):
    d = relay_factory("-f", conf, "-c", "relay", "-v", listen="",
                      args=default_args(), workers=WORKERS, wait=False)
    d.port = port
    d.start()
    return d


def check_names(d):
    """Every session event names its session, every message event its
    message, each in the form an operator greps for."""
    for pid, role, ev, rest in events(d):
        line = "event=%s%s" % (ev, rest)
        if ev in SESSION_EVENTS and role == "session":
            assert re.search(r" session=%s( |$)" % SID, line), line
        if ev == "auth":
            assert re.search(r" user=\S+ .*session=%s" % SID, line), line
        if ev in MESSAGE_EVENTS and role == "relay" and \
                "source=local" not in rest:
            assert re.search(r" queue_id=%s( |$)" % QID, line), line
        if ev == "message" and "source=local" not in rest:
            assert re.search(r" session=%s user=\S+ tls=\S+$" % SID,
                             line), line
        if ev == "rcpt-refused":
            assert re.search(r" from=\S+ rcpt=\S+ reason=\S+", line), line


def test_session_and_message_ids(relay_factory, world, upstream_factory,
                                 secrets):
    certs, users = secrets
    up = upstream_factory("--rcpt-code", "%s=451" % LATER)
    port = free_port()
    conf, queue = relay_conf(world, lines=[
        "relay-domains example.com",
        "upstream 127.0.0.1 port %d" % up.port,
        certs.conf_line(),
        "users %s" % users,
        "max-sessions 3",
        "queue-retry 1s",
        "listen on 127.0.0.1 port %d auth" % port,
    ])

    # The first run: sessions on every worker, one of them with TLS,
    # AUTH and a refused recipient, and a message deferred.
    d1 = start(relay_factory, conf, port)
    concurrent_sessions(port, 3 * WORKERS, "first")
    tls_qid = tls_auth_session(port, certs)
    refused_session(port)
    later = smtp_send(port, SENDER, [LATER], make_message(99, "later"))
    d1.wait_log(r"relay: event=attempt queue_id=%s .*rcpt=<%s> "
                r"result=deferred code=451 " % (later, LATER))
    d1.wait_log(r"relay: event=deferred queue_id=%s rcpts=1 retry_in=\d+s$"
                % later)
    up.wait_messages(3 * WORKERS + 1)
    d1.wait_log(r"relay: event=removed queue_id=%s$" % tls_qid)
    d1.wait_log(r"session: event=disconnect ", count=3 * WORKERS + 4)
    assert d1.stop() == 0

    # The restart: the upstream takes the deferred recipient now.
    up.stop()
    up.args = []
    up.start()
    d2 = start(relay_factory, conf, port)
    concurrent_sessions(port, 3, "second")
    d2.wait_log(r"relay: event=attempt queue_id=%s .*rcpt=<%s> "
                r"result=delivered code=250 " % (later, LATER))
    d2.wait_log(r"relay: event=removed queue_id=%s$" % later)
    d2.wait_log(r"session: event=disconnect ", count=4)

    # No two sessions share an id: across workers, across the restart.
    first, second = session_ids(d1), session_ids(d2)
    ids = [sid for _, sid in first + second]
    assert len(first) >= 3 * WORKERS + 3 and len(second) >= 3
    assert all(re.fullmatch(SID, sid) for sid in ids), ids
    assert len(set(ids)) == len(ids), sorted(ids)
    assert len({pid for pid, _ in first}) >= 2, first
    # Each worker its own tag (the low 10 bits), none of a run shared.
    for run in (first, second):
        tags = {}
        for pid, sid in run:
            tags.setdefault(pid, set()).add(int(sid, 16) & 0x3ff)
        assert all(len(t) == 1 for t in tags.values()), tags
        assert len(set.union(*tags.values())) == len(tags), tags
    check_names(d1)
    check_names(d2)

    # One session, one grep: every step of it, from every process.
    lines1, lines2 = d1.log_lines(), d2.log_lines()
    [m] = d1.log_grep(r"relay: event=message queue_id=%s .* session=(%s) "
                      r"user=%s tls=TLSv1\.[23]$" % (tls_qid, SID, USER))
    sid = m.group(1)
    found = grep(lines1 + lines2, "session=" + sid)
    seen = [(role, ev) for l in found
            for _, role, ev, _ in [LINE_RE.match(l).groups()]]
    for want in [("session", "connect"), ("session", "helo"),
                 ("session", "tls"), ("parent", "auth"),
                 ("session", "mail"), ("session", "rcpt-refused"),
                 ("session", "rcpt"), ("relay", "message"),
                 ("session", "disconnect")]:
        assert want in seen, (want, found)
    [refused] = [l for l in found if "event=rcpt-refused" in l]
    assert re.search(r" from=<%s> rcpt=<%s> reason=relay-denied$"
                     % (re.escape(SENDER), re.escape(OUTSIDE)), refused)
    assert not grep(lines2, "session=" + sid)

    # One message, one grep: accepted, every attempt, the end of it.
    found = grep(lines1 + lines2, "queue_id=" + later)
    evs = [LINE_RE.match(l).group(3) for l in found]
    assert evs[:2] == ["message", "queued"], found
    assert "deferred" in evs and evs[-1] == "removed", found
    attempts = [l for l in found if "event=attempt" in l]
    assert len(attempts) >= 2, found
    assert "result=deferred" in attempts[0], attempts
    assert "result=delivered" in attempts[-1], attempts
    [msg] = [l for l in found if "event=message" in l]
    m = re.search(r" session=(%s) user=- tls=-$" % SID, msg)
    assert m, msg
    # And the session that sent it, from its message line.
    assert grep(lines1, "event=connect session=" + m.group(1))

    # The EXAMPLES of smtpd.8, as written there, on this log.
    assert doc_example(d1, later) == [msg]


def doc_example(d, qid):
    """smtpd.8's two greps for the message line of qid, from SENDER to
    LATER, at the minute its line was logged: the lines they find."""
    [stamped] = [l for l in d.log_lines(stamped=True)
                 if "event=message queue_id=%s " % qid in l]
    minute = re.search(r"T(\d\d:\d\d):", stamped).group(1)
    first = subprocess.Popen(
        ["grep", "T%s:.*event=message " % minute, d.err_path],
        stdout=subprocess.PIPE)
    out = subprocess.run(
        ["grep", "from=<%s> .*<%s>" % (SENDER, LATER)], stdin=first.stdout,
        capture_output=True, timeout=scaled(10)).stdout.decode()
    first.stdout.close()
    assert first.wait(scaled(10)) == 0
    return [LOG_STAMP.sub("", l) for l in out.splitlines()]

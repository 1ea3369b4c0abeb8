"""Relay rules, routes, failover and rates (SPEC sections 7.1 and 7.2).

accept rules with a client in a network namespace (10.x) and one on
loopback; sender-login; an upstream that never greets next to a healthy
one; an upstream whose open connections all hang while new ones are
served; routes by sender domain to two TLS upstreams with their own
credentials and rewrite-sender; a rate of 60/min.  Real servers only:
regress/lib/upstream.py (with --no-greeting and --hang-first) and
regress/lib/tls_upstream.py; every wait is a poll with a deadline.
"""
import os
import signal
import smtplib
import subprocess
import time

import pytest

from harness import SMTPD_BIN, free_port, scaled
from relay_harness import (make_message, message_id, netns,  # noqa: F401
                           relay_conf, relay_factory, smtp_send,
                           split_received, upstream_factory, world)
from test_upstream_tls import TLSUpstream, certs  # noqa: F401
from tls_certs import users_file

NOPRIV = ("-d", "-n")


def start(relay_factory, conf, ports):
    """The daemon on the configuration's listeners; ports[0] on 127.0.0.1
    is the one waited for."""
    d = relay_factory("-f", conf, "-c", "relay", args=NOPRIV, listen="",
                      wait=False)
    d.port = ports[0]
    d.start()
    return d


def listen_lines(*hosts):
    ports = [free_port(host=h) for h in hosts]
    return ports, ["listen on %s port %d" % (h, p)
                   for h, p in zip(hosts, ports)]


def rcpt_reply(client, sender, rcpt):
    client.ehlo()
    r = client.cmd("MAIL FROM:<%s>" % sender)
    assert r.code == 250, r
    return client.cmd("RCPT TO:<%s>" % rcpt)


# --------------------------------------------------------------------------
# 7.1: rules

def test_open_relay_refused_by_line(tmp_path):
    """accept from any for any is refused, naming its line, by -t too."""
    path = tmp_path / "open.conf"
    path.write_text("mode relay\naccept for domain example.org\n"
                    "accept from any for any\n")
    p = subprocess.run([SMTPD_BIN, "-t", "-f", str(path)],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=scaled(10))
    assert p.returncode == 1
    assert ("%s:3: accept: \"accept from any for any\" is an open relay"
            % path) in p.stderr.decode()


def test_accept_from_src_for_domain(world, upstream_factory, relay_factory,
                                    netns):
    """accept from src 10.0.0.0/8 for domain example.org: a client at
    10.x relays to example.org, not elsewhere; a client on loopback (not
    in 10/8) is refused too: with a rule, loopback is not trusted."""
    up = upstream_factory()
    ports, listen = listen_lines("127.0.0.1", netns.host_ip)
    conf, _ = relay_conf(world, lines=[
        "upstream 127.0.0.1 port %d plain" % up.port,
        "accept from src 10.0.0.0/8 for domain example.org"] + listen)
    d = start(relay_factory, conf, ports)
    with netns.client(ports[1]) as c:
        assert c.reply().code == 220
        assert rcpt_reply(c, "a@lan.example", "x@example.org").code == 250
        r = c.cmd("RCPT TO:<x@example.net>")
        assert (r.code, r.enh) == (550, "5.7.1"), r
        assert "Relay access denied" in r.text
        c.cmd("DATA")
        c.send(make_message(1, "lan") + b".\r\n")
        assert c.reply().code == 250
    with d.client() as c:
        r = rcpt_reply(c, "a@lan.example", "x@example.org")
        assert (r.code, r.enh) == (550, "5.7.1"), r
    msgs = up.wait_messages(1)
    assert msgs[0]["rcpts"] == ["x@example.org"]
    assert msgs[0]["peer"] == "127.0.0.1"


def test_sender_login(world, upstream_factory, relay_factory, tmp_path):
    """sender-login: alice may send as alice@example.com and anything
    @alice.example, not as bob; bob has no line: only <>."""
    up = upstream_factory()
    users = users_file(str(tmp_path / "users"),
                       {"alice": "alice-Pa55", "bob": "bob-Pa55"})
    logins = tmp_path / "logins"
    logins.write_text("# user address ...\n"
                      "alice alice@example.com, @alice.example\n")
    port = free_port()
    conf, _ = relay_conf(world, lines=[
        "upstream 127.0.0.1 port %d plain" % up.port,
        "users " + users, "sender-login " + str(logins),
        "listen on 127.0.0.1 port %d auth" % port])
    d = start(relay_factory, conf, [port])

    def mail(user, pw, sender):
        s = smtplib.SMTP("127.0.0.1", port, timeout=scaled(20))
        try:
            s.ehlo("client.example")
            s.login(user, pw)
            return s.mail(sender)
        finally:
            s.close()
    assert mail("alice", "alice-Pa55", "alice@example.com")[0] == 250
    assert mail("alice", "alice-Pa55", "x@Alice.Example")[0] == 250
    code, text = mail("alice", "alice-Pa55", "bob@example.com")
    assert code == 553 and b"5.7.1" in text and \
        b"Sender address not owned by user" in text, text
    assert mail("bob", "bob-Pa55", "bob@example.com")[0] == 553
    assert mail("bob", "bob-Pa55", "")[0] == 250
    # A reload reads the file again: now bob has a line.
    logins.write_text("alice alice@example.com\nbob bob@example.com\n")
    old = set(d.wait_workers(2))
    d.send_signal(signal.SIGHUP)
    d.wait_log(r"relay: event=policy-reloaded")
    d.wait_workers(2, exclude=old)
    assert mail("bob", "bob-Pa55", "bob@example.com")[0] == 250
    assert mail("alice", "alice-Pa55", "x@alice.example")[0] == 553


# --------------------------------------------------------------------------
# 7.2: failover and hung upstreams

def test_failover_when_primary_never_greets(world, upstream_factory,
                                            relay_factory):
    """Two old-style upstream lines: the primary accepts TCP and never
    greets.  A message reaches the secondary within 45 s of its 250 (the
    30 s of connect and greeting), and the next one goes there at once:
    the primary is down."""
    bad = upstream_factory("--no-greeting", name="mute")
    good = upstream_factory(name="good")
    conf, _ = relay_conf(world, lines=[
        "upstream 127.0.0.1 port %d plain" % bad.port,
        "upstream 127.0.0.1 port %d plain" % good.port])
    d = relay_factory("-f", conf, "-c", "relay", args=NOPRIV)
    t0 = time.monotonic()
    smtp_send(d.port, "a@example.com", ["r@example.net"],
              make_message(1, "fo"))
    good.wait_messages(1, timeout=scaled(45))
    took = time.monotonic() - t0
    assert took < 45, took
    d.wait_log(r"event=upstream-unreachable upstream=127\.0\.0\.1:%d "
               r"reason=\"greeting timeout\"" % bad.port)
    t1 = time.monotonic()
    smtp_send(d.port, "a@example.com", ["r@example.net"],
              make_message(2, "fo"))
    good.wait_messages(2, timeout=scaled(10))
    assert time.monotonic() - t1 < 10


def test_hung_connections_do_not_hold_the_queue(world, upstream_factory,
                                                relay_factory):
    """The only upstream (old one-line form, max-connections 8 by
    default): its first eight connections stop answering at the final
    dot, later ones are served.  All eight slots hang; 30 s later they
    no longer count, the queued mail flows on new connections, and no
    message is delivered twice (the eight in flight are not sent again
    while their wait lasts)."""
    up = upstream_factory("--hang-first", "8")
    conf, _ = relay_conf(world, lines=[
        "upstream 127.0.0.1 port %d plain" % up.port])
    d = relay_factory("-f", conf, "-c", "relay", args=NOPRIV)
    s = smtplib.SMTP("127.0.0.1", d.port, timeout=scaled(20))
    for i in range(16):
        s.sendmail("a@example.com", ["r@example.net"],
                   make_message(i, "hang"))
    s.quit()
    t0 = time.monotonic()
    msgs = up.wait_messages(8, timeout=scaled(50))
    took = time.monotonic() - t0
    assert took < 42, took
    time.sleep(1)
    ids = [message_id(split_received(m["data"])[1])
           for m in up.messages()]
    assert len(ids) == 8 and len(set(ids)) == 8, ids


# --------------------------------------------------------------------------
# 7.2: routes

def test_routes_by_sender_with_credentials(world, relay_factory, certs,
                                           tmp_path):
    """Mail from @a.example goes only to upstream A, with A's credentials
    over STARTTLS; from @b.example only to B with B's.  rewrite-sender
    on A's route changes the envelope sender there and nothing else."""
    ups = []
    try:
        for name in ("a", "b"):
            ups.append(TLSUpstream(
                str(tmp_path / ("up-" + name)),
                ["--cert", certs.path("server.pem"), "--key",
                 certs.path("server.key"), "--user", "user-" + name,
                 "--password", "pw-" + name]).start())
        lines = []
        for name, u in zip(("a", "b"), ups):
            secret = tmp_path / ("secret-" + name)
            fd = os.open(str(secret), os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, ("user-%s pw-%s\n" % (name, name)).encode())
            os.close(fd)
            lines.append("upstream %s host 127.0.0.1 port %d starttls "
                         "ca %s auth %s" % (name.upper(), u.port,
                                            certs.path("ca.pem"), secret))
        lines += ["route sender @a.example via A rewrite-sender "
                  "@relay.a.example",
                  "route sender @b.example via B",
                  "route via B"]
        conf, _ = relay_conf(world, lines=lines)
        d = relay_factory("-f", conf, "-c", "relay", args=NOPRIV)
        data_a = make_message(1, "from-a")
        smtp_send(d.port, "alice@a.example", ["r@example.net"], data_a)
        smtp_send(d.port, "bob@b.example", ["r@example.net"],
                  make_message(2, "from-b"))
        ma = ups[0].wait_messages(1)
        mb = ups[1].wait_messages(1)
        time.sleep(0.5)
        assert len(ups[0].messages()) == 1 and len(ups[1].messages()) == 1
        assert ma[0]["auth_user"] == "user-a" and ma[0]["tls"]
        assert mb[0]["auth_user"] == "user-b" and mb[0]["tls"]
        assert ma[0]["sender"] == "alice@relay.a.example"
        assert mb[0]["sender"] == "bob@b.example"
        _, rest = split_received(ma[0]["data"])
        assert rest.replace(b"X-Peer: 127.0.0.1\r\n", b"") == data_a
    finally:
        for u in ups:
            u.stop()


def test_recipients_in_two_routes(world, upstream_factory, relay_factory):
    """One message, recipients in two routes (by domain): each upstream
    gets the message once, with its own recipients only."""
    ua = upstream_factory(name="ua")
    ub = upstream_factory(name="ub")
    conf, _ = relay_conf(world, lines=[
        "upstream ua host 127.0.0.1 port %d plain" % ua.port,
        "upstream ub host 127.0.0.1 port %d plain" % ub.port,
        "route for domain a.example via ua",
        "route via ub"])
    d = relay_factory("-f", conf, "-c", "relay", args=NOPRIV)
    smtp_send(d.port, "s@example.com", ["x@a.example", "y@b.example",
                                         "z@A.example"],
              make_message(1, "split"))
    ma = ua.wait_messages(1)
    mb = ub.wait_messages(1)
    assert sorted(ma[0]["rcpts"]) == ["x@a.example", "z@A.example"]
    assert mb[0]["rcpts"] == ["y@b.example"]
    d.wait_log(r"event=removed ")


def test_rate_delays_never_refuses(world, upstream_factory, relay_factory):
    """rate 60/min: 30 queued messages take no less than 25 s (a burst of
    6, then evenly spaced), and none is refused or bounced."""
    up = upstream_factory()
    conf, _ = relay_conf(world, lines=[
        "upstream u host 127.0.0.1 port %d plain rate 60/min" % up.port])
    d = relay_factory("-f", conf, "-c", "relay", args=NOPRIV)
    s = smtplib.SMTP("127.0.0.1", d.port, timeout=scaled(20))
    for i in range(30):
        assert s.sendmail("a@example.com", ["r@example.net"],
                          make_message(i, "rate")) == {}
    s.quit()
    msgs = up.wait_messages(30, timeout=scaled(60))
    times = sorted(os.stat(os.path.join(up.dir, m["file"])).st_mtime
                   for m in msgs)
    spread = times[-1] - times[0]
    assert spread >= 25, spread
    assert spread < 40, spread
    assert not d.log_grep(r"result=(failed|deferred)")

"""The metrics (SPEC section 12) over the optional metrics listener:
plain HTTP, GET /metrics only, served by the sandboxed relay.  Real
clients (smtplib, with STARTTLS and AUTH; urllib; raw sockets for the
bad requests) and real upstreams (regress/lib/upstream.py: A takes
everything, B answers RCPT with 451, C is not there); the text is read
by prometheus_client's OpenMetrics parser, and every counter must move
by exactly what the test did."""
import os
import select
import signal
import smtplib
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from harness import SMTPD_BIN, free_port, need_tool, proc_status, scaled, \
    wait_for
from relay_harness import (make_message, relay_conf,  # noqa: F401
                           relay_factory, upstream_factory, world)
from skips import missing, need_root
from tls_certs import ServerCerts, users_file

__all__ = ["relay_factory", "upstream_factory", "world"]

USER = "alice"
PASSWORD = "Alice-s3cret-pw"
REQUEST_DEADLINE = 5        # METRICS_REQUEST_MS, relay/metrics_http.h
CONNS_MAX = 16              # METRICS_CONNS_MAX


def parser():
    try:
        from prometheus_client.openmetrics.parser import \
            text_string_to_metric_families
    except ImportError:
        missing("no prometheus_client (Debian package "
                "python3-prometheus-client)")
    return text_string_to_metric_families


def scrape(port):
    """GET /metrics with urllib: {(sample name, labels): value}."""
    url = "http://127.0.0.1:%d/metrics" % port
    with urllib.request.urlopen(url, timeout=scaled(10)) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith(
            "application/openmetrics-text"), r.headers
        text = r.read().decode()
    assert text.endswith("# EOF\n")
    out = {}
    for fam in parser()(text):
        assert fam.name.startswith("smtpd_"), fam.name
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def val(m, name, **labels):
    return m.get((name, tuple(sorted(labels.items()))))


@pytest.fixture(scope="module")
def secrets(tmp_path_factory):
    need_tool("openssl")
    d = str(tmp_path_factory.mktemp("metrics"))
    certs = ServerCerts(d)
    users = users_file(os.path.join(d, "users"), {USER: PASSWORD})
    return certs, users


def start(world, relay_factory, lines, args=None, opts=""):
    """The daemon with an SMTP listener and a metrics one; (d, port)."""
    port, mport = free_port(), free_port()
    conf, queue = relay_conf(world, lines=list(lines) + [
        "control-socket " + os.path.join(world.path, "ctl.sock"),
        "queue-retry 300s",
        ("listen on 127.0.0.1 port %d " % port + opts).rstrip(),
        "listen on 127.0.0.1 port %d metrics" % mport])
    kw = {"args": args} if args else {}
    d = relay_factory("-f", conf, "-c", "relay", listen="", wait=False,
                      **kw)
    d.port = port
    d.start()
    return d, mport


def test_counters_move_by_what_was_done(world, upstream_factory,
                                        relay_factory, secrets):
    """2 sessions (one with STARTTLS and AUTH, a failed login first), 2
    RCPTs refused (relay-denied, routing-characters), 3 messages
    delivered by A, 1 deferred by B, 1 waiting for C, which is down:
    each counter moves by that."""
    certs, users = secrets
    ua = upstream_factory(name="ua")
    ub = upstream_factory("--rcpt-code", "y@b.example=451", name="ub")
    cport = free_port()
    d, mport = start(world, relay_factory, [
        "relay-domains a.example, b.example, c.example",
        "upstream A host 127.0.0.1 port %d plain" % ua.port,
        "upstream B host 127.0.0.1 port %d plain" % ub.port,
        "upstream C host 127.0.0.1 port %d plain" % cport,
        "route for domain b.example via B",
        "route for domain c.example via C",
        "route via A", certs.conf_line(), "users " + users], opts="auth")
    # The banner the harness waited for is a session too: counted first.
    before = wait_for(lambda: (lambda m: m if val(
        m, "smtpd_sessions_total") >= 1 else None)(scrape(mport)),
        scaled(5), "the start's session counted")
    assert d.wait_log(r"event=start .*listen=127\.0\.0\.1:%d,"
                      r"http://127\.0\.0\.1:%d/metrics " % (d.port, mport))

    s = smtplib.SMTP("127.0.0.1", d.port, timeout=scaled(15))
    s.ehlo("one.example")
    s.mail("s@example.com")
    assert s.rcpt("x@elsewhere.org")[0] == 550
    assert s.rcpt("x%elsewhere.org@a.example")[0] == 553
    s.rset()
    for i, rcpt in enumerate(["a1@a.example", "a2@a.example",
                              "a3@a.example", "z@c.example"]):
        s.sendmail("s@example.com", [rcpt], make_message(i))
    s.quit()

    s = smtplib.SMTP("127.0.0.1", d.port, timeout=scaled(15))
    s.ehlo("two.example")
    s.starttls(context=certs.client_context())
    s.ehlo("two.example")
    # One mechanism (login() would try PLAIN, then LOGIN: two failures).
    s.user, s.password = USER, "wrong-password"
    with pytest.raises(smtplib.SMTPAuthenticationError):
        s.auth("PLAIN", s.auth_plain)
    s.user, s.password = USER, PASSWORD
    assert s.auth("PLAIN", s.auth_plain)[0] == 235
    s.sendmail("s@example.com", ["y@b.example"], make_message(9))
    s.quit()

    ua.wait_messages(3)
    d.wait_log(r"event=attempt .*result=deferred code=451 .*"
               r"upstream_name=B")
    d.wait_log(r"event=upstream-unreachable .*upstream_name=C")

    def delta(m, name, **labels):
        return val(m, name, **labels) - (val(before, name, **labels) or 0)

    want = {
        ("smtpd_sessions_total", ()): 2,
        ("smtpd_tls_sessions_total", ()): 1,
        ("smtpd_auth_total", (("result", "success"),)): 1,
        ("smtpd_auth_total", (("result", "failure"),)): 1,
        ("smtpd_messages_received_total", ()): 5,
        ("smtpd_delivery_delay_seconds_count", ()): 3,
    }

    last = {}

    def settled():
        m = last["m"] = scrape(mport)
        ok = all(delta(m, n, **dict(lb)) == v for (n, lb), v in
                 want.items()) and val(m, "smtpd_sessions_open") == 0
        return m if ok else None
    try:
        m = wait_for(settled, scaled(10), "the counters of what was done")
    except AssertionError:
        got = {k: delta(last["m"], k[0], **dict(k[1])) for k in want}
        raise AssertionError("deltas %r, want %r, open %r" % (
            got, want, val(last["m"], "smtpd_sessions_open")))
    for reason in ("max-sessions", "max-sessions-per-ip", "proxy",
                   "starttls-required", "sender-login", "storage"):
        assert delta(m, "smtpd_refused_total", reason=reason) == 0, reason
    assert delta(m, "smtpd_refused_total", reason="relay-denied") == 1
    assert delta(m, "smtpd_refused_total", reason="routing-characters") == 1
    rcpts = {(up, res): val(m, "smtpd_recipients_total", upstream=up,
                            result=res)
             for up in "ABC" for res in ("delivered", "deferred", "bounced")}
    assert rcpts == {("A", "delivered"): 3, ("A", "deferred"): 0,
                     ("A", "bounced"): 0, ("B", "delivered"): 0,
                     ("B", "deferred"): 1, ("B", "bounced"): 0,
                     ("C", "delivered"): 0, ("C", "deferred"): 0,
                     ("C", "bounced"): 0}, rcpts
    assert not [k for k in m if k[0] == "smtpd_recipients_total" and
                dict(k[1])["upstream"] not in "ABC"], m
    assert val(m, "smtpd_upstream_up", upstream="A") == 1
    assert val(m, "smtpd_upstream_up", upstream="B") == 1
    assert val(m, "smtpd_upstream_up", upstream="C") == 0
    assert val(m, "smtpd_queue_length") == 2
    assert 0 <= val(m, "smtpd_queue_oldest_seconds") < scaled(60)
    # Delivered within a second or two of the 250: the first buckets.
    assert val(m, "smtpd_delivery_delay_seconds_bucket", le="5") == 3
    assert val(m, "smtpd_delivery_delay_seconds_bucket", le="+Inf") == 3
    assert 0 <= val(m, "smtpd_delivery_delay_seconds_sum") <= 3 * 5
    # smtpctl show metrics is the same text (but for the moment).
    ctl = subprocess.run([os.path.join(os.path.dirname(SMTPD_BIN),
                                       "smtpctl"), "-s",
                          os.path.join(world.path, "ctl.sock"), "show",
                          "metrics"], capture_output=True, timeout=scaled(20))
    assert ctl.returncode == 0, ctl.stderr
    names = {f.name for f in parser()(ctl.stdout.decode())}
    assert {"smtpd_sessions", "smtpd_tls_sessions", "smtpd_refused",
            "smtpd_recipients", "smtpd_upstream_up"} <= names


# --------------------------------------------------------------------------
# bad requests: answered, or closed, within a deadline

def raw(port, data, timeout=None):
    """Send data, read to the end: (bytes, seconds it took)."""
    t0 = time.monotonic()
    c = socket.create_connection(("127.0.0.1", port), timeout=scaled(3))
    c.settimeout(timeout or scaled(REQUEST_DEADLINE + 5))
    c.sendall(data)
    out = b""
    while True:
        b = c.recv(65536)
        if not b:
            break
        out += b
    c.close()
    return out, time.monotonic() - t0


def status(resp):
    return int(resp.split(b" ", 2)[1]) if resp.startswith(b"HTTP/1.1 ") \
        else None


@pytest.fixture
def daemon(world, upstream_factory, relay_factory):
    up = upstream_factory()
    return start(world, relay_factory,
                 ["upstream A host 127.0.0.1 port %d plain" % up.port])


@pytest.mark.parametrize("request_bytes,code", [
    (b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nx=1",
     405),
    (b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    (b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    (b"GET /metricsX HTTP/1.1\r\n\r\n", 404),
    (b"GET /metrics HTTP/2.0\r\n\r\n", 505),
    (b"HELLO\r\n\r\n", 400),
    (b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n", 400),
    (b"GET /metrics HTTP/1.1\r\nX: a\x00b\r\n\r\n", 400),
    (b"GET /metrics HTTP/1.1\r\nX-Long: " + b"a" * 20000 + b"\r\n\r\n", 431),
], ids=["post", "head", "other-path", "prefix-path", "http2", "garbage",
        "bad-field", "nul", "oversized"])
def test_bad_request_answered_and_closed(daemon, request_bytes, code):
    d, mport = daemon
    resp, secs = raw(mport, request_bytes)
    assert status(resp) == code, resp[:200]
    assert b"\r\nConnection: close\r\n" in resp
    if code == 405:
        assert b"\r\nAllow: GET\r\n" in resp
    if request_bytes.startswith(b"HEAD "):
        assert resp.endswith(b"\r\n\r\n"), resp
    assert secs < scaled(REQUEST_DEADLINE), secs
    # The listener goes on serving.
    assert val(scrape(mport), "smtpd_queue_length") == 0


def test_slowloris_cut_at_the_deadline(daemon):
    """A request that trickles in, a byte at a time, and connections that
    send nothing: 408 and closed at the deadline, whatever they send;
    past the limit of clients a connection is closed at once; then
    the listener serves again."""
    d, mport = daemon
    trickle = socket.create_connection(("127.0.0.1", mport),
                                       timeout=scaled(3))
    t0 = time.monotonic()
    trickle.sendall(b"GET /metrics HTTP/1.1\r\n")
    idle = [socket.create_connection(("127.0.0.1", mport), timeout=scaled(3))
            for _ in range(CONNS_MAX - 1)]
    extra = socket.create_connection(("127.0.0.1", mport), timeout=scaled(3))
    extra.settimeout(scaled(3))
    assert extra.recv(100) == b"", "a client past the limit was served"
    extra.close()
    got = b""
    limit = t0 + scaled(REQUEST_DEADLINE + 5)
    while time.monotonic() < limit:
        r, _, _ = select.select([trickle], [], [], 0.3)
        if r:
            b = trickle.recv(65536)
            if not b:
                break
            got += b
            continue
        try:
            trickle.sendall(b"X")
        except OSError:
            break
    secs = time.monotonic() - t0
    assert status(got) == 408, got
    assert REQUEST_DEADLINE - 1 <= secs < REQUEST_DEADLINE + scaled(3), secs
    for c in idle:
        c.settimeout(scaled(5))
        resp = b""
        while True:
            b = c.recv(65536)
            if not b:
                break
            resp += b
        assert status(resp) == 408, resp
        c.close()
    trickle.close()
    assert val(scrape(mport), "smtpd_queue_length") == 0
    d.wait_log(r"relay: event=metrics-timeout ", count=CONNS_MAX)


# --------------------------------------------------------------------------
# who serves it

def socket_inode(lport, rport):
    """The inode of the established TCP socket 127.0.0.1:lport ->
    127.0.0.1:rport (the daemon's end), from /proc/net/tcp."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            w = line.split()
            local, remote, state, inode = w[1], w[2], w[3], w[9]
            # (Inode 0: still in the backlog, not accepted yet.)
            if (int(local.split(":")[1], 16) == lport and
                    int(remote.split(":")[1], 16) == rport and
                    state == "01" and inode != "0"):
                return inode
    return None


def holders(pids, inode):
    want = "socket:[%s]" % inode
    out = []
    for pid in pids:
        fds = "/proc/%d/fd" % pid
        for fd in os.listdir(fds):
            try:
                if os.readlink(os.path.join(fds, fd)) == want:
                    out.append(pid)
            except OSError:
                pass
    return out


def test_served_by_the_sandboxed_relay(daemon):
    """As root: the process that holds an accepted metrics connection is
    the relay, unprivileged, chrooted to the queue, under seccomp."""
    need_root()
    d, mport = daemon
    c = socket.create_connection(("127.0.0.1", mport), timeout=scaled(3))
    c.sendall(b"GET /metrics HTTP/1.1\r\n")     # held open: incomplete
    rport = c.getsockname()[1]
    inode = wait_for(lambda: socket_inode(mport, rport), scaled(5),
                     "the accepted connection")
    who = wait_for(lambda: holders([d.pid] + d.children(), inode),
                   scaled(5), "the process holding it")
    assert who == d.relays(), (who, d.relays())
    st = proc_status(who[0])
    assert all(int(u) != 0 for u in st["Uid"].split()), st["Uid"]
    assert all(int(g) != 0 for g in st["Gid"].split()), st["Gid"]
    assert st["Seccomp"] == "2" and st["NoNewPrivs"] == "1", st
    root = os.readlink("/proc/%d/root" % who[0])
    assert root != "/" and root.rstrip("/").endswith("queue"), root
    c.close()


def test_command_line_address_keeps_the_metrics_listener(
        world, upstream_factory, relay_factory):
    """An address on the command line replaces the SMTP listeners of the
    file, not its metrics one."""
    up = upstream_factory()
    mport, fport = free_port(), free_port()
    conf, _ = relay_conf(world, lines=[
        "upstream A host 127.0.0.1 port %d plain" % up.port,
        "listen on 127.0.0.1 port %d" % fport,
        "listen on 127.0.0.1 port %d metrics" % mport])
    d = relay_factory("-f", conf, "-c", "relay")
    d.wait_log(r"event=start .*listen=127\.0\.0\.1:%d,"
               r"http://127\.0\.0\.1:%d/metrics " % (d.port, mport))
    assert val(scrape(mport), "smtpd_upstream_up", upstream="A") == 1
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", fport), timeout=scaled(3))


def test_reload_adds_and_removes_metrics_listeners(world, upstream_factory,
                                                   relay_factory):
    """SIGHUP with a metrics listener kept, one added and one removed:
    the kept one answers throughout, the added one answers, the removed
    one is closed (the relay gets the whole new set at the reload)."""
    up = upstream_factory()
    keep, gone, new = free_port(), free_port(), free_port()
    lines = ["upstream A host 127.0.0.1 port %d plain" % up.port]

    def write(ports):
        return relay_conf(world, lines=lines + [
            "listen on 127.0.0.1 port %d metrics" % p for p in ports])[0]
    conf = write([keep, gone])
    d = relay_factory("-f", conf, "-c", "relay")
    assert val(scrape(gone), "smtpd_upstream_up", upstream="A") == 1
    # A client connected before the reload is answered after it.
    waiting = socket.create_connection(("127.0.0.1", keep),
                                       timeout=scaled(5))
    write([keep, new])
    d.send_signal(signal.SIGHUP)
    d.wait_log(r"relay: event=policy-reloaded")
    assert val(scrape(new), "smtpd_upstream_up", upstream="A") == 1
    assert val(scrape(keep), "smtpd_upstream_up", upstream="A") == 1
    waiting.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
    assert status(waiting.recv(64)) == 200
    waiting.close()
    with pytest.raises(OSError):
        scrape(gone)


def test_debug_mode_outcomes(world, relay_factory):
    """In debug mode the outcomes are the transport's, upstream="debug",
    and the delay histogram counts them too."""
    mport = free_port()
    conf = world.conf(["mode debug",
                       "listen on 127.0.0.1 port %d metrics" % mport])
    d = relay_factory("-f", conf)
    s = smtplib.SMTP("127.0.0.1", d.port, timeout=scaled(15))
    s.sendmail("s@example.com", ["r1@example.net", "r2@example.net"],
               make_message(1))
    s.quit()

    def delivered():
        m = scrape(mport)
        return m if val(m, "smtpd_recipients_total", upstream="debug",
                        result="delivered") == 2 else None
    m = wait_for(delivered, scaled(10), "2 recipients printed")
    assert val(m, "smtpd_messages_received_total") == 1
    assert val(m, "smtpd_delivery_delay_seconds_count") == 2
    assert not [k for k in m if k[0] == "smtpd_upstream_up"]


# --------------------------------------------------------------------------
# the configuration

def check_conf(tmp_path, line):
    p = tmp_path / "m.conf"
    p.write_text(line + "\n")
    r = subprocess.run([SMTPD_BIN, "-t", "-f", str(p)], capture_output=True,
                       timeout=scaled(10), stdin=subprocess.DEVNULL)
    return r.returncode, r.stderr.decode()


@pytest.mark.parametrize("line,error", [
    ("listen on 127.0.0.1 port 9100 metrics", None),
    ("listen on 127.0.0.1 metrics", 'listen: metrics needs "port N"'),
    ("listen on 127.0.0.1 port 9100 metrics tls", "listen: metrics takes "
     "none of tls, starttls-required, auth and proxy-from"),
    ("listen on 127.0.0.1 port 9100 auth metrics", "listen: metrics takes "
     "none of tls, starttls-required, auth and proxy-from"),
])
def test_metrics_keyword(tmp_path, line, error):
    rc, err = check_conf(tmp_path, line)
    if error is None:
        assert rc == 0, err
    else:
        assert rc == 1 and ("m.conf:1: " + error) in err, err

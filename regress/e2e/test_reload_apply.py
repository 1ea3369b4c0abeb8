"""A reload applies the new configuration (SPEC section 12): a listener
added or removed without closing the unchanged ones, queue-retry, the
TLS certificate and the upstream's password read again, the pool
resized; a session opened before it goes on with one more message.  A
broken certificate keeps the running configuration, and says so.

The upstream is regress/lib/tls_upstream.py (STARTTLS, and AUTH with
one password: it refuses any other), the clients smtplib and the raw
client of harness.py, on loopback.  Which certificate the daemon shows
is told by its SHA-256 fingerprint after STARTTLS; which sockets are
listening, by /proc/net/tcp (a socket that stays open keeps its inode).
"""
import hashlib
import os
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import threading

from harness import Client, check, free_port, scaled, wait_for
from skips import need_root
from test_upstream_tls import (USER, SENDER, RCPT, TLSUpstream,  # noqa: F401
                               certs, upstreams)

PW_OLD = "old-Pa55word"
PW_NEW = "new-Pa55word"
SMTPCTL = os.path.join(os.path.dirname(os.environ.get(
    "SMTPD_BIN", os.path.join(os.path.dirname(__file__), "..", "..",
                              "build", "smtpd"))), "smtpctl")


def fingerprint_of(pem):
    with open(pem) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return hashlib.sha256(der).hexdigest()


def starttls_fingerprint(port):
    """The fingerprint of the certificate the daemon shows on port."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", port, timeout=scaled(15)) as s:
        s.ehlo("client.example")
        s.starttls(context=ctx)
        der = s.sock.getpeercert(binary_form=True)
    return hashlib.sha256(der).hexdigest()


def listen_inode(port):
    """The inode of the socket listening on 127.0.0.1:port, or None."""
    want = "0100007F:%04X" % port
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == want and fields[3] == "0A":
                return int(fields[9])
    return None


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port),
                                 timeout=scaled(2)).close()
    except ConnectionRefusedError:
        return True
    return False


def write(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


class World:
    """A configuration file that the test rewrites between reloads,
    with a certificate pair and an upstream password of its own."""

    def __init__(self, tmp_path, certs):
        self.tmp = tmp_path
        self.certs = certs
        self.conf = str(tmp_path / "smtpd.conf")
        self.cert = str(tmp_path / "smtpd.pem")
        self.key = str(tmp_path / "smtpd.key")
        self.auth = str(tmp_path / "upstream-auth")
        self.sock = str(tmp_path / "ctl.sock")
        self.use_cert("server")

    def use_cert(self, name):
        pem, key = self.certs.pair(name)
        shutil.copy(pem, self.cert)
        shutil.copy(key, self.key)
        os.chmod(self.key, 0o600)

    def write_conf(self, lines):
        write(self.conf, "".join(l + "\n" for l in lines), 0o644)

    def start(self, factory, port, mode=("-c", "relay"), workers=2):
        # The listeners are the file's: none on the command line.
        d = factory("-v", "-f", self.conf, *mode, listen="", wait=False,
                    workers=workers)
        d.port = port
        return d.start()


def reload(d, world=None):
    """SIGHUP, or smtpctl reload when we may use the control socket;
    returns what smtpctl printed (None for a signal)."""
    n = len(d.log_grep(r"event=reload result="))
    out = None
    if world is not None and os.geteuid() == 0:
        p = subprocess.run([SMTPCTL, "-s", world.sock, "reload"],
                           capture_output=True, timeout=scaled(20))
        assert p.returncode == 0, p.stderr
        out = p.stdout.decode()
    else:
        d.send_signal(signal.SIGHUP)
    wait_for(lambda: len(d.log_grep(r"event=reload result=")) > n,
             scaled(10), "the reload's result")
    return out


def test_reload_applies_listener_retry_cert_password(smtpd_factory, tmp_path,
                                                     certs, upstreams):
    """Done when 4 of issue 12: one reload adds a listener, changes
    queue-retry, replaces the certificate and the upstream password;
    all of it works without a restart, and a session opened before it
    sends one more message and gets 250."""
    need_root()
    upcert, upkey = certs.pair("server")
    up = upstreams("--cert", upcert, "--key", upkey, "--user", USER,
                   "--password", PW_OLD, name="old")
    w = World(tmp_path, certs)
    write(w.auth, "%s %s\n" % (USER, PW_OLD))
    p1, p2 = free_port(), free_port()
    base = ["queue " + str(tmp_path / "queue"),
            "listen on 127.0.0.1 port %d" % p1,
            "tls certificate %s key %s" % (w.cert, w.key),
            "upstream 127.0.0.1 port %d starttls" % up.port,
            "upstream-ca " + certs.path("ca.pem"),
            "upstream-auth " + w.auth,
            "relay-domains example.net",
            "control-socket " + w.sock]
    w.write_conf(base + ["queue-retry 1h"])
    d = w.start(smtpd_factory, p1)
    assert starttls_fingerprint(p1) == fingerprint_of(certs.path(
        "server.pem"))
    old_workers = set(d.wait_workers(2))

    # The session that spans the reload, with a first message.
    s = smtplib.SMTP("127.0.0.1", p1, timeout=scaled(20))
    s.ehlo("client.example")
    msg = "From: <%s>\r\nSubject: %s\r\n\r\nbody\r\n"
    assert s.sendmail(SENDER, [RCPT], msg % (SENDER, "before")) == {}
    m = up.wait_messages(1)[0]
    assert m["auth_user"] == USER and m["tls"] is True

    # The provider rotates the password (the upstream is down while it
    # does); the certificate is renewed; a listener is added; retries
    # come sooner.
    up.stop()
    write(w.auth, "%s %s\n" % (USER, PW_NEW))
    w.use_cert("other")
    w.write_conf(base + ["listen on 127.0.0.1 port %d" % p2,
                         "queue-retry 2s"])
    out = reload(d, w)
    assert out.startswith("applied"), out
    assert "needs a restart" not in out, out
    d.wait_workers(2, exclude=old_workers)

    # One more message on the session of before: 250, no 421.
    assert s.sendmail(SENDER, [RCPT], msg % (SENDER, "after")) == {}
    assert s.noop()[0] == 250
    # queue-retry is the new one: the back-off of the down upstream.
    wait_for(lambda: d.log_grep(r"event=upstream-unreachable .*"
                                r"retry_in=2s"), scaled(20),
             "the upstream marked down for 2 s")
    new = upstreams("--cert", upcert, "--key", upkey, "--user", USER,
                    "--password", PW_NEW, port=up.port, name="new")
    m = new.wait_messages(1, timeout=scaled(20))[0]
    assert b"Subject: after\r\n" in m["data"]
    assert m["auth_user"] == USER
    sess = new.wait_sessions(lambda x: x["auth"])
    assert all(a["ok"] for x in sess for a in x["auth"]), sess
    s.quit()

    # The new listener, and the new certificate on both.
    c = Client(p2)
    check(c.reply(), 220, None, what="greeting on the new listener")
    c.close()
    for port in (p1, p2):
        assert starttls_fingerprint(port) == fingerprint_of(certs.path(
            "other.pem"))
    assert not d.log_grep(r"event=kill|worker-violation|child-died")


class Knocker(threading.Thread):
    """Connects to port again and again until stopped: each connection
    must be greeted with 220."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.ok = 0
        self.errors = []

    def run(self):
        while not self.stop.is_set():
            try:
                c = Client(self.port, timeout=scaled(10))
                r = c.reply()
                c.close()
                if r.code != 220:
                    self.errors.append(r)
                else:
                    self.ok += 1
            except (OSError, AssertionError) as e:
                self.errors.append(repr(e))


def test_reload_removes_listener_keeps_unchanged(smtpd_factory, tmp_path,
                                                 certs):
    """A listener no longer in the file is closed; the one that stays
    keeps its socket (the same inode) and greets every client that
    connects during the reloads; the pool takes its new size."""
    w = World(tmp_path, certs)
    p1, p2 = free_port(), free_port()
    w.write_conf(["listen on 127.0.0.1 port %d" % p1,
                  "listen on 127.0.0.1 port %d" % p2, "workers 2"])
    d = w.start(smtpd_factory, p1, mode=(), workers=None)
    old = set(d.wait_workers(2))
    ino = listen_inode(p1)
    assert ino is not None and listen_inode(p2) is not None
    k = Knocker(p1)
    k.start()
    try:
        wait_for(lambda: k.ok > 0, scaled(10), "a first greeting")
        w.write_conf(["listen on 127.0.0.1 port %d" % p1, "workers 3"])
        reload(d)
        assert d.log_grep(r"event=reload result=applied listeners=1 "
                          r"added=0 closed=1 workers=3")
        wait_for(lambda: listen_inode(p2) is None, scaled(10),
                 "the removed listener to close")
        assert refused(p2)
        old |= set(d.wait_workers(3, exclude=old))
        # Two more, while clients come; the queue directory needs a
        # restart, and the reload says so.
        w.write_conf(["listen on 127.0.0.1 port %d" % p1, "workers 3",
                      "queue " + str(tmp_path / "elsewhere")])
        for _ in range(2):
            before = k.ok
            reload(d)
            assert d.log_grep(r'event=reload kept="queue" '
                              r'reason="needs a restart"')
            old |= set(d.wait_workers(3, exclude=old))
            wait_for(lambda: k.ok > before, scaled(10), "a greeting")
    finally:
        k.stop.set()
        k.join(scaled(20))
    assert k.errors == []
    assert listen_inode(p1) == ino


def test_reload_broken_certificate_keeps_running_one(smtpd_factory,
                                                     tmp_path, certs):
    """A certificate that cannot be used: the reload fails as on a
    syntax error, the log says why, and everything stays as it was (the
    old certificate, the old listeners, the old workers)."""
    w = World(tmp_path, certs)
    p1, p2 = free_port(), free_port()
    base = ["listen on 127.0.0.1 port %d" % p1,
            "tls certificate %s key %s" % (w.cert, w.key)]
    w.write_conf(base)
    d = w.start(smtpd_factory, p1, mode=())
    workers = set(d.wait_workers(2))
    server = fingerprint_of(certs.path("server.pem"))
    assert starttls_fingerprint(p1) == server
    write(w.cert, "-----BEGIN CERTIFICATE-----\nnot one\n"
          "-----END CERTIFICATE-----\n", 0o644)
    w.write_conf(base + ["listen on 127.0.0.1 port %d" % p2])
    reload(d)
    assert d.log_grep(r"event=config-error tls: ")
    assert d.log_grep(r"event=reload result=failed")
    assert starttls_fingerprint(p1) == server
    assert refused(p2)
    assert set(d.sessions()) == workers
    # Mended, it is applied.
    w.use_cert("other")
    reload(d)
    assert d.log_grep(r"event=reload result=applied")
    d.wait_workers(2, exclude=workers)
    assert starttls_fingerprint(p1) == fingerprint_of(certs.path(
        "other.pem"))
    assert not refused(p2)


def test_reload_routes_upstreams_and_bad_secret(smtpd_factory, tmp_path,
                                                certs, upstreams):
    """A reload adds an upstream and routes the mail to it, with its
    own credentials; one that renames an upstream keeps the upstreams
    and routes, and says so; one whose credentials file is readable by
    others fails and keeps all that runs."""
    need_root()
    upcert, upkey = certs.pair("server")
    a = upstreams("--cert", upcert, "--key", upkey, "--user", USER,
                  "--password", PW_OLD, name="a")
    b = upstreams("--cert", upcert, "--key", upkey, "--user", USER,
                  "--password", PW_NEW, name="b")
    w = World(tmp_path, certs)
    write(w.auth, "%s %s\n" % (USER, PW_OLD))
    bauth = str(tmp_path / "b-auth")
    write(bauth, "%s %s\n" % (USER, PW_NEW))
    p1 = free_port()
    ca = certs.path("ca.pem")
    base = ["queue " + str(tmp_path / "queue"),
            "listen on 127.0.0.1 port %d" % p1,
            "relay-domains example.net", "queue-retry 1s",
            "control-socket " + w.sock,
            "upstream a host 127.0.0.1 port %d starttls ca %s auth %s"
            % (a.port, ca, w.auth)]
    up_b = ("upstream %s host 127.0.0.1 port %d starttls ca %s auth %s"
            % ("%s", b.port, ca, bauth))
    w.write_conf(base + ["route via a"])
    d = w.start(smtpd_factory, p1)

    def send(subject):
        with smtplib.SMTP("127.0.0.1", p1, timeout=scaled(20)) as s:
            s.ehlo("client.example")
            assert s.sendmail(SENDER, [RCPT], "Subject: %s\r\n\r\nx\r\n"
                              % subject) == {}

    send("one")
    assert b"Subject: one" in a.wait_messages(1)[0]["data"]
    w.write_conf(base + [up_b % "b", "route via b, a"])
    out = reload(d, w)
    assert "upstreams, routes and credentials" in out, out
    send("two")
    assert b"Subject: two" in b.wait_messages(1)[0]["data"]
    assert len(a.messages()) == 1
    # The new upstream had its addresses before it was tried.
    assert not d.log_grep(r"event=upstream-(unreachable|connect-failed)")

    # Renamed: the relay cannot take it; the running routes stay.
    w.write_conf(base + [up_b % "c", "route via c, a"])
    out = reload(d, w)
    assert "needs a restart: upstream" in out, out
    assert d.log_grep(r'event=reload kept="upstream"')
    send("three")
    wait_for(lambda: len(b.messages()) == 2, scaled(20), "two at b")

    # A credentials file that others may read: nothing changes.
    os.chmod(bauth, 0o644)
    w.write_conf(base + [up_b % "b", "route via a"])
    out = subprocess.run([SMTPCTL, "-s", w.sock, "reload"],
                         capture_output=True, timeout=scaled(20))
    assert out.returncode == 1, out
    assert d.log_grep(r"event=config-error .*b-auth: readable by others")
    assert d.log_grep(r"event=reload result=failed")
    send("four")
    wait_for(lambda: len(b.messages()) == 3, scaled(20), "three at b")
    assert len(a.messages()) == 1

"""relay mode with TLS and AUTH towards the upstream (SPEC section 7):
STARTTLS and implicit TLS, the certificate checked against upstream-ca
and the configured name (never a fall-back to clear text), AUTH PLAIN
or LOGIN after TLS, and every failure a temporary one: the message
stays queued, the log says why, and the password never shows.

The upstream is regress/lib/tls_upstream.py, run as a process; the
certificates (a test CA, a server certificate for localhost and
127.0.0.1 signed by it, one for another name, and an untrusted
self-signed one) are made with openssl(1) in a temporary directory.
Only the standard library; loopback only; every wait is a poll with a
deadline, and every process is killed at teardown.
"""
import base64
import glob
import json
import os
import select
import signal
import smtplib
import subprocess
import sys
import time

import pytest

from harness import (ROOT, VALGRIND, free_port, group_members, need_tool,
                     scaled, wait_for)
from relay_harness import queue_ids

TLS_UPSTREAM_PY = os.path.join(ROOT, "regress", "lib", "tls_upstream.py")
USER = "relayuser"
PASSWORD = "s3cret-Pa55word"
SENDER = "author@example.com"
RCPT = "rcpt@example.net"
RETRY = 2               # queue-retry, seconds


# --------------------------------------------------------------------------
# certificates

def openssl(*args, cwd):
    p = subprocess.run(["openssl"] + list(args), cwd=cwd,
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=scaled(60))
    assert p.returncode == 0, "openssl %s: %s" % (" ".join(args),
                                                  p.stderr.decode())


class Certs:
    """ca.pem; server.pem/key (localhost, 127.0.0.1, by the CA);
    other.pem/key (other.test, 127.0.0.2, by the CA); self.pem/key
    (localhost, 127.0.0.1, self-signed: trusted by nobody)."""

    def __init__(self, d):
        self.dir = d
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes"]
        openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem",
                "-days", "2", "-subj", "/CN=smtpd test CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                cwd=d)
        for name, san in (("server", "DNS:localhost,IP:127.0.0.1"),
                          ("other", "DNS:other.test,IP:127.0.0.2")):
            with open(os.path.join(d, name + ".ext"), "w") as f:
                f.write("basicConstraints=CA:FALSE\n"
                        "keyUsage=critical,digitalSignature\n"
                        "extendedKeyUsage=serverAuth\n"
                        "subjectAltName=%s\n" % san)
            openssl("req", "-new", *ec, "-keyout", name + ".key", "-out",
                    name + ".csr", "-subj", "/CN=" + san.split(",")[0][4:],
                    cwd=d)
            openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem",
                    "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
                    "-extfile", name + ".ext", "-out", name + ".pem", cwd=d)
        openssl("req", "-x509", *ec, "-keyout", "self.key", "-out",
                "self.pem", "-days", "2", "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                cwd=d)

    def path(self, name):
        return os.path.join(self.dir, name)

    def pair(self, name):
        return self.path(name + ".pem"), self.path(name + ".key")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    need_tool("openssl")
    return Certs(str(tmp_path_factory.mktemp("certs")))


# --------------------------------------------------------------------------
# the upstream

class TLSUpstream:
    """regress/lib/tls_upstream.py as a process in its own session."""

    def __init__(self, dirpath, args, port=None):
        self.dir = dirpath
        self.args = list(args)
        self.port = port or free_port()
        self.proc = None

    def start(self, timeout=None):
        os.makedirs(self.dir, exist_ok=True)
        self.err = open(self.dir + ".err", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, TLS_UPSTREAM_PY, "--dir", self.dir, "--host",
             "127.0.0.1", "--port", str(self.port)] + self.args,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self.err, start_new_session=True)
        deadline = time.monotonic() + (timeout or scaled(10))
        line = b""
        while b"\n" not in line and len(line) < 256:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                break
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if not r:
                break
            ch = os.read(self.proc.stdout.fileno(), 64)
            if not ch:
                break
            line += ch
        if not line.startswith(b"port %d" % self.port):
            self.stop()
            raise AssertionError("TLS upstream did not start on port %d: "
                                 "%r" % (self.port, line))
        return self

    def stop(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(scaled(10))
        finally:
            self.proc.stdout.close()
            self.err.close()
        pgid, self.proc = self.proc.pid, None
        wait_for(lambda: not group_members(pgid), scaled(5),
                 "the TLS upstream's processes to die")

    def messages(self):
        out = []
        for path in sorted(glob.glob(os.path.join(self.dir, "*.json"))):
            with open(path) as f:
                rec = json.load(f)
            rec["data"] = base64.b64decode(rec["data"])
            out.append(rec)
        return out

    def wait_messages(self, n, timeout=None):
        return wait_for(lambda: (lambda m: m if len(m) >= n else None)(
            self.messages()), timeout or scaled(20),
            "%d messages at the upstream" % n, interval=0.05)

    def sessions(self):
        try:
            with open(os.path.join(self.dir, "sessions.jsonl")) as f:
                return [json.loads(l) for l in f if l.endswith("\n")]
        except FileNotFoundError:
            return []

    def wait_sessions(self, pred, timeout=None, what="a session"):
        return wait_for(lambda: [s for s in self.sessions() if pred(s)],
                        timeout or scaled(20), what, interval=0.05)


@pytest.fixture
def upstreams(tmp_path):
    ups = []

    def make(*args, port=None, name=None):
        u = TLSUpstream(str(tmp_path / (name or "up%d" % len(ups))), args,
                        port=port)
        ups.append(u)
        return u.start()

    yield make
    for u in ups:
        u.stop()


# --------------------------------------------------------------------------
# the daemon

class Relay:
    """build/smtpd -c relay with a configuration for upstream u."""

    def __init__(self, factory, tmp_path, port, mode="starttls",
                 verify=True, ca=None, auth=(USER, PASSWORD),
                 host="127.0.0.1", eol="\n"):
        self.queue = str(tmp_path / "queue")
        lines = ["queue " + self.queue,
                 "upstream %s port %d %s%s" % (host, port, mode,
                                               "" if verify else
                                               " no-verify"),
                 "queue-retry %ds" % RETRY,
                 "relay-domains example.net"]
        if ca:
            lines.append("upstream-ca " + ca)
        if auth:
            authfile = str(tmp_path / "upstream-auth")
            with open(authfile, "w") as f:
                f.write("%s %s%s" % (auth + (eol,)))
            os.chmod(authfile, 0o600)
            lines.append("upstream-auth " + authfile)
        conf = str(tmp_path / "smtpd.conf")
        with open(conf, "w") as f:
            f.write("".join(l + "\n" for l in lines))
        # Under valgrind there is no seccomp filter to wait for.
        self.d = factory(args=("-d", "-n", "-v", "-f", conf, "-c",
                               "relay"), workers=None if VALGRIND else 2)

    def send(self, subject="tls test"):
        data = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\n"
                "body line\r\n" % (SENDER, RCPT, subject)).encode()
        with smtplib.SMTP("127.0.0.1", self.d.port,
                          timeout=scaled(15)) as s:
            s.ehlo("client.example")
            assert s.sendmail(SENDER, [RCPT], data) == {}
        return data

    def queued(self):
        """The ids of the messages in the queue, wherever their
        envelope (queue/ID.env, or in the message file: format 4)."""
        return sorted(queue_ids(self.queue))

    def wait_log(self, pattern, timeout=None):
        return wait_for(lambda: self.d.log_grep(pattern),
                        timeout or scaled(20),
                        "a log line matching %r" % pattern, interval=0.05)

    def log(self):
        return self.d.stderr() + self.d.stdout()


def assert_no_password(relay):
    """Neither the password nor an encoding of it is in the output."""
    text = relay.log()
    forms = [PASSWORD,
             base64.b64encode(PASSWORD.encode()).decode(),
             base64.b64encode(("\0%s\0%s" % (USER, PASSWORD))
                              .encode()).decode()]
    for f in forms:
        assert f not in text, "the password is in the daemon's output"


def assert_delivered_over_tls(up, relay, mech="PLAIN"):
    msgs = up.wait_messages(1)
    assert len(msgs) == 1
    m = msgs[0]
    assert m["tls"] is True
    assert m["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert m["auth_user"] == USER
    assert m["auth_mech"] == mech
    assert m["rcpts"] == [RCPT] and m["sender"] == SENDER
    assert b"Subject: tls test\r\n" in m["data"]
    wait_for(lambda: not relay.queued(), scaled(10),
             "the queue to empty")
    relay.wait_log(r"event=upstream-connected .*tls=yes auth=yes")
    assert_no_password(relay)


def unreachable(relay, reason_re):
    """Wait for the log line that says why the upstream is skipped."""
    return relay.wait_log(r"event=upstream-unreachable upstream=\S+ "
                          r"reason=\"%s\"" % reason_re)


# --------------------------------------------------------------------------
# tests

def test_starttls_auth_plain(smtpd_factory, tmp_path, certs, upstreams):
    cert, key = certs.pair("server")
    up = upstreams("--cert", cert, "--key", key, "--user", USER,
                   "--password", PASSWORD)
    relay = Relay(smtpd_factory, tmp_path, up.port, ca=certs.path("ca.pem"))
    relay.send()
    assert_delivered_over_tls(up, relay)
    # In clear text only EHLO and STARTTLS; everything else under TLS,
    # after EHLO again.
    s = up.wait_sessions(lambda s: "MAIL+tls" in s["verbs"])[0]
    assert s["verbs"][:5] == ["EHLO", "STAR", "EHLO+tls", "AUTH+tls",
                              "MAIL+tls"]
    assert s["auth"] == [{"mech": "PLAIN", "tls": True, "ok": True,
                          "user": USER}]
    assert not s["pipelined_after_starttls"]
    # An IP literal is verified as such, and not sent as SNI.
    assert s["sni"] is None


def test_crlf_auth_file(smtpd_factory, tmp_path, certs, upstreams):
    """A file written on Windows: the CR is no part of the password."""
    cert, key = certs.pair("server")
    up = upstreams("--cert", cert, "--key", key, "--user", USER,
                   "--password", PASSWORD)
    relay = Relay(smtpd_factory, tmp_path, up.port, ca=certs.path("ca.pem"),
                  eol="\r\n")
    relay.send()
    assert_delivered_over_tls(up, relay)


def test_starttls_auth_login(smtpd_factory, tmp_path, certs, upstreams):
    cert, key = certs.pair("server")
    up = upstreams("--cert", cert, "--key", key, "--user", USER,
                   "--password", PASSWORD, "--mechs", "CRAM-MD5 LOGIN")
    relay = Relay(smtpd_factory, tmp_path, up.port, ca=certs.path("ca.pem"))
    relay.send()
    assert_delivered_over_tls(up, relay, mech="LOGIN")


def test_starttls_by_name(smtpd_factory, tmp_path, certs, upstreams):
    """upstream localhost: the name is verified and sent as SNI."""
    cert, key = certs.pair("server")
    up = upstreams("--cert", cert, "--key", key, "--user", USER,
                   "--password", PASSWORD)
    relay = Relay(smtpd_factory, tmp_path, up.port, ca=certs.path("ca.pem"),
                  host="localhost")
    relay.send()
    assert_delivered_over_tls(up, relay)
    s = up.wait_sessions(lambda s: "MAIL+tls" in s["verbs"])[0]
    assert s["sni"] == "localhost"


def test_untrusted_certificate_stays_queued(smtpd_factory, tmp_path, certs,
                                            upstreams):
    cert, key = certs.pair("self")
    up = upstreams("--cert", cert, "--key", key, "--user", USER,
                   "--password", PASSWORD)
    relay = Relay(smtpd_factory, tmp_path, up.port, ca=certs.path("ca.pem"))
    relay.send()
    unreachable(relay, r"certificate verify failed: self-signed "
                       r"certificate[^\"]*")
    assert len(relay.queued()) == 1
    # The handshake never finished: no AUTH, no MAIL, under TLS or not.
    s = up.wait_sessions(lambda s: s["error"])[0]
    assert s["verbs"] == ["EHLO", "STAR"]
    assert s["auth"] == []
    assert up.messages() == []
    # It is tried again at queue-retry, and stays queued.
    wait_for(lambda: len(up.sessions()) >= 2, scaled(RETRY * 3 + 10),
             "a second attempt")
    assert len(relay.queued()) == 1
    assert up.messages() == []
    assert_no_password(relay)


def test_wrong_name_stays_queued(smtpd_factory, tmp_path, certs, upstreams):
    """A certificate of the right CA for another name is refused."""
    cert, key = certs.pair("other")
    up = upstreams("--cert", cert, "--key", key)
    relay = Relay(smtpd_factory, tmp_path, up.port, ca=certs.path("ca.pem"),
                  auth=None)
    relay.send()
    unreachable(relay, r"certificate verify failed: IP address mismatch")
    assert len(relay.queued()) == 1
    assert up.messages() == []


def test_no_verify_goes_through(smtpd_factory, tmp_path, certs, upstreams):
    cert, key = certs.pair("self")
    up = upstreams("--cert", cert, "--key", key, "--user", USER,
                   "--password", PASSWORD)
    relay = Relay(smtpd_factory, tmp_path, up.port, verify=False)
    relay.send()
    assert_delivered_over_tls(up, relay)
    relay.wait_log(r"event=upstream-tls .*verified=no")


def test_implicit_tls(smtpd_factory, tmp_path, certs, upstreams):
    cert, key = certs.pair("server")
    up = upstreams("--implicit", "--cert", cert, "--key", key, "--user",
                   USER, "--password", PASSWORD)
    relay = Relay(smtpd_factory, tmp_path, up.port, mode="tls",
                  ca=certs.path("ca.pem"))
    relay.send()
    assert_delivered_over_tls(up, relay)
    s = up.wait_sessions(lambda s: "MAIL+tls" in s["verbs"])[0]
    assert s["verbs"][:3] == ["EHLO+tls", "AUTH+tls", "MAIL+tls"]


def test_implicit_tls_untrusted(smtpd_factory, tmp_path, certs, upstreams):
    cert, key = certs.pair("self")
    up = upstreams("--implicit", "--cert", cert, "--key", key)
    relay = Relay(smtpd_factory, tmp_path, up.port, mode="tls",
                  ca=certs.path("ca.pem"), auth=None)
    relay.send()
    unreachable(relay, r"certificate verify failed: self-signed "
                       r"certificate[^\"]*")
    assert len(relay.queued()) == 1
    s = up.wait_sessions(lambda s: s["error"])[0]
    assert s["verbs"] == []


def test_wrong_password_stays_queued_then_goes(smtpd_factory, tmp_path,
                                               certs, upstreams):
    """535: the message waits; with the right password at the upstream
    it goes at the next attempt."""
    cert, key = certs.pair("server")
    up = upstreams("--cert", cert, "--key", key, "--user", USER,
                   "--password", "another-password", name="wrong")
    relay = Relay(smtpd_factory, tmp_path, up.port, ca=certs.path("ca.pem"))
    relay.send()
    unreachable(relay, r"AUTH PLAIN failed: 535 5\.7\.8 Authentication "
                       r"credentials invalid")
    assert len(relay.queued()) == 1
    s = up.wait_sessions(lambda s: s["auth"])[0]
    assert s["auth"] == [{"mech": "PLAIN", "tls": True, "ok": False,
                          "user": USER}]
    assert "MAIL+tls" not in s["verbs"] and "MAIL" not in s["verbs"]
    assert up.messages() == []
    assert_no_password(relay)

    port = up.port
    up.stop()
    up2 = upstreams("--cert", cert, "--key", key, "--user", USER,
                    "--password", PASSWORD, port=port, name="right")
    up2.wait_messages(1, timeout=scaled(RETRY * 3 + 15))
    assert_delivered_over_tls(up2, relay)
    relay.wait_log(r"event=upstream-reachable")


def test_starttls_not_offered_stays_queued(smtpd_factory, tmp_path, certs,
                                           upstreams):
    """Never a fall-back to clear text, credentials or not."""
    up = upstreams("--user", USER, "--password", PASSWORD,
                   "--auth-plaintext")
    relay = Relay(smtpd_factory, tmp_path, up.port, ca=certs.path("ca.pem"))
    relay.send()
    unreachable(relay, r"upstream does not offer STARTTLS")
    assert len(relay.queued()) == 1
    s = up.wait_sessions(lambda s: True)[0]
    assert s["verbs"][0] == "EHLO"
    assert "AUTH" not in s["verbs"] and "MAIL" not in s["verbs"]
    assert up.messages() == []
    assert_no_password(relay)


def test_no_auth_offered_stays_queued(smtpd_factory, tmp_path, certs,
                                      upstreams):
    cert, key = certs.pair("server")
    up = upstreams("--cert", cert, "--key", key)
    relay = Relay(smtpd_factory, tmp_path, up.port, ca=certs.path("ca.pem"))
    relay.send()
    unreachable(relay, r"upstream offers no AUTH PLAIN/LOGIN")
    assert len(relay.queued()) == 1
    assert up.messages() == []


def test_injection_after_starttls_is_dropped(smtpd_factory, tmp_path,
                                             certs, upstreams):
    """A reply slipped in after the 220 to STARTTLS, in clear text, is
    not taken as the answer to the EHLO under TLS."""
    cert, key = certs.pair("server")
    up = upstreams("--cert", cert, "--key", key, "--user", USER,
                   "--password", PASSWORD, "--inject")
    relay = Relay(smtpd_factory, tmp_path, up.port, ca=certs.path("ca.pem"))
    relay.send()
    assert_delivered_over_tls(up, relay)
    relay.wait_log(r"event=upstream-starttls-extra octets=\d+ "
                   r"action=discarded")


def test_plain_upstream_with_auth_warns(smtpd_factory, tmp_path, upstreams):
    """AUTH over a plain upstream, when configured so: allowed, with one
    warning."""
    up = upstreams("--user", USER, "--password", PASSWORD,
                   "--auth-plaintext")
    relay = Relay(smtpd_factory, tmp_path, up.port, mode="plain")
    relay.send()
    msgs = up.wait_messages(1)
    assert msgs[0]["tls"] is False and msgs[0]["auth_user"] == USER
    relay.send()
    up.wait_messages(2)
    assert len(relay.d.log_grep(r"event=upstream-auth-cleartext")) == 1
    assert_no_password(relay)


def test_default_is_starttls_when_offered(smtpd_factory, tmp_path, certs,
                                          upstreams):
    """Without plain, starttls or tls: STARTTLS with verification when
    the upstream offers it (SPEC section 7)..."""
    cert, key = certs.pair("server")
    up = upstreams("--cert", cert, "--key", key, "--user", USER,
                   "--password", PASSWORD)
    relay = Relay(smtpd_factory, tmp_path, up.port, mode="",
                  ca=certs.path("ca.pem"))
    relay.send()
    assert_delivered_over_tls(up, relay)


def test_default_untrusted_stays_queued(smtpd_factory, tmp_path, certs,
                                        upstreams):
    """... and an offered certificate that fails verification is a
    temporary failure, not a reason to go on in clear text."""
    cert, key = certs.pair("self")
    up = upstreams("--cert", cert, "--key", key)
    relay = Relay(smtpd_factory, tmp_path, up.port, mode="", auth=None,
                  ca=certs.path("ca.pem"))
    relay.send()
    unreachable(relay, r".*certificate.*")
    assert len(relay.queued()) == 1
    assert up.messages() == []


def test_default_plain_when_not_offered(smtpd_factory, tmp_path, certs,
                                        upstreams):
    """An upstream without STARTTLS gets the message in clear text."""
    up = upstreams()
    relay = Relay(smtpd_factory, tmp_path, up.port, mode="", auth=None,
                  ca=certs.path("ca.pem"))
    relay.send()
    msgs = up.wait_messages(1)
    assert msgs[0]["tls"] is False


def test_default_with_credentials_needs_tls(smtpd_factory, tmp_path, certs,
                                            upstreams):
    """With upstream-auth and no TLS keyword, STARTTLS is required: the
    password never crosses in clear text unless plain was asked for."""
    up = upstreams("--user", USER, "--password", PASSWORD,
                   "--auth-plaintext")
    relay = Relay(smtpd_factory, tmp_path, up.port, mode="",
                  ca=certs.path("ca.pem"))
    relay.send()
    unreachable(relay, r"upstream does not offer STARTTLS")
    assert len(relay.queued()) == 1
    s = up.wait_sessions(lambda s: True)[0]
    assert "AUTH" not in s["verbs"]
    assert up.messages() == []
    assert_no_password(relay)

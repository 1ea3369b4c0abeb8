"""The daemon's server side of TLS and AUTH (SPEC sections 4, 7, 8, 10):
STARTTLS and implicit TLS listeners, starttls-required, AUTH PLAIN and
LOGIN checked by the parent, relaying for an authenticated client, the
STARTTLS command injection (CVE-2011-0411), failed logins answered late
and logged without the password, AUTH withheld in clear text from a
client that is not on loopback, no secret file open in any child, and
TLS 1.2 as the floor.

Clients: smtplib, raw sockets with the ssl module, swaks and curl.  The
certificates (a test CA, a server certificate for localhost and
127.0.0.1) and the users file (SHA-512 crypt) are made with openssl(1).
The upstream is the recording regress/lib/upstream.py.  Only the
standard library; loopback only, but for the test that makes its own
network namespace; every wait is a poll with a deadline, and every
process is killed at teardown.
"""
import base64
import json
import os
import re
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings

import pytest

from harness import Reply, check, children_of, free_port, need_tool, \
    proc_status, scaled, wait_for
from relay_harness import (IS_ROOT, netns, relay_conf,  # noqa: F401
                           relay_factory, smtpd_pw, upstream_factory, world)
from skips import missing, need_root, need_tls11, need_user
from tls_certs import ServerCerts, crypt_hash, users_file

# The fixtures above (netns, relay_factory, upstream_factory, world) are
# imported so that pytest finds them in this module.

USER = "alice"
PASSWORD = "Alice-s3cret-pw"
SENDER = "author@example.com"
INSIDE = "rcpt@example.com"          # in relay-domains
OUTSIDE = "x@elsewhere.org"          # not: needs AUTH
NOPRIV = ("-d", "-n")
REPLY_RE = re.compile(rb"^(\d{3})([ -])(.*)\r\n\Z", re.S)


def body(subject):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
            "Message-ID: <%s@test.example>\r\n\r\nhello over TLS\r\n"
            % (SENDER, OUTSIDE, subject, subject.replace(" ", "-"))
            ).encode()


# --------------------------------------------------------------------------
# fixtures: certificates, users, the daemon

class Secrets:
    """The module's certificates and users file (absolute paths)."""

    def __init__(self, d):
        self.certs = ServerCerts(d)
        self.ca = self.certs.ca
        self.cert = self.certs.cert
        self.key = self.certs.key
        self.users = users_file(os.path.join(d, "users"),
                                {USER: PASSWORD, "bob": "bob-Pa55"})

    def context(self):
        return self.certs.client_context()


@pytest.fixture(scope="module")
def secrets(tmp_path_factory):
    need_tool("openssl")
    return Secrets(str(tmp_path_factory.mktemp("tls-auth")))


def start(relay_factory, world, up, secrets, listeners, args=NOPRIV,
          lines=(), users=None):
    """The daemon in relay mode with a configuration of listeners (a
    list of (host, options); the first must be a clear-text one on
    127.0.0.1, the one waited for).  Returns (daemon, [port, ...])."""
    ports = []
    listen = []
    for host, opts in listeners:
        ports.append(free_port(host=host))
        listen.append(("listen on %s port %d %s" % (host, ports[-1], opts))
                      .rstrip())
    conf, _ = relay_conf(world, lines=[
        "relay-domains example.com",
        "upstream 127.0.0.1 port %d" % up.port,
        "tls certificate %s key %s" % (secrets.cert, secrets.key),
        "users %s" % (users or secrets.users),
    ] + list(lines) + listen)
    d = relay_factory("-f", conf, "-c", "relay", args=args, listen="",
                      wait=False)
    d.port = ports[0]
    d.start()
    return d, ports


# --------------------------------------------------------------------------
# a raw client on a plain or TLS socket

class Conn:
    """Exact bytes out, complete replies in, on a blocking socket with
    a time-out; starttls() wraps it in place."""

    def __init__(self, port, host="127.0.0.1", timeout=None, sock=None):
        self.timeout = timeout or scaled(10)
        self.sock = sock or socket.create_connection((host, port),
                                                     self.timeout)
        self.sock.settimeout(self.timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def _line(self, deadline):
        for _ in range(10000):
            i = self.buf.find(b"\n")
            if i != -1:
                line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
                return line
            if time.monotonic() > deadline:
                break
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("connection closed; have %r" % self.buf)
            self.buf += data
        raise AssertionError("no reply line; have %r" % self.buf)

    def reply(self):
        deadline = time.monotonic() + self.timeout
        lines, raw, code = [], b"", None
        for _ in range(100):
            line = self._line(deadline)
            raw += line
            m = REPLY_RE.match(line)
            assert m, "malformed reply line %r" % line
            assert code is None or int(m.group(1)) == code, raw
            code = int(m.group(1))
            lines.append(m.group(3).decode("utf-8", "replace"))
            if m.group(2) == b" ":
                return Reply(code, lines, raw)
        raise AssertionError("endless reply %r" % raw)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def expect(self, line, code, enh="any", text=None):
        return check(self.cmd(line), code, enh, text, what=line)

    def ehlo(self, name="client.example"):
        r = self.expect("EHLO " + name, 250, None)
        return [l.upper() for l in r.lines[1:]]

    def starttls(self, ctx, hostname="localhost"):
        assert self.buf == b"", "bytes after the 220: %r" % self.buf
        self.sock = ctx.wrap_socket(self.sock, server_hostname=hostname)
        self.sock.settimeout(self.timeout)

    def closed(self):
        """True once the server closed the connection (nothing more)."""
        try:
            data = self.sock.recv(4096)
        except (ConnectionResetError, ssl.SSLEOFError):
            return True
        assert not (self.buf + data), "unexpected %r" % (self.buf + data)
        return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def plain_b64(user, password, authz=""):
    return base64.b64encode(("%s\0%s\0%s" % (authz, user, password))
                            .encode()).decode()


def b64(s):
    return base64.b64encode(s.encode()).decode()


def auth_mechs(features):
    """The mechanisms of the AUTH line of an EHLO reply, or None."""
    for l in features:
        if l.startswith("AUTH ") or l == "AUTH":
            return set(l.split()[1:])
    return None


def assert_no_password(d, *passwords):
    log = d.stderr()
    for pw in passwords:
        for form in (pw, b64(pw)):
            assert form not in log, "password %r in the log" % form
    for user in (USER, "bob"):
        for pw in passwords:
            assert plain_b64(user, pw) not in log


# --------------------------------------------------------------------------
# 1. STARTTLS, AUTH, relaying for the authenticated

def test_starttls_login_relays_outside_domains(world, upstream_factory,
                                               relay_factory, secrets):
    """smtplib: starttls(), login(), sendmail() to a recipient outside
    relay-domains reaches the upstream; the same without login is
    refused 550 5.7.1 at RCPT, and a recipient inside relay-domains is
    still accepted."""
    up = upstream_factory()
    d, [port] = start(relay_factory, world, up, secrets,
                      [("127.0.0.1", "auth")])
    with smtplib.SMTP("127.0.0.1", port, timeout=scaled(15)) as s:
        s.ehlo("client.example")
        assert s.has_extn("starttls")
        s.starttls(context=secrets.context())
        s.ehlo("client.example")
        assert not s.has_extn("starttls"), "STARTTLS offered under TLS"
        assert {"PLAIN", "LOGIN"} <= set(s.esmtp_features["auth"].upper()
                                         .split())
        s.login(USER, PASSWORD)
        refused = s.sendmail(SENDER, [OUTSIDE], body("authenticated"))
        assert refused == {}
    [rec] = up.wait_messages(1)
    assert rec["sender"] == SENDER
    assert rec["rcpts"] == [OUTSIDE]
    assert rec["data"].endswith(b"\r\n\r\nhello over TLS\r\n"), rec["data"]
    assert b"Subject: authenticated\r\n" in rec["data"]
    d.wait_log(r"event=auth client=127\.0\.0\.1 user=alice result=ok")
    d.wait_log(r"event=tls session=\S+ client=127\.0\.0\.1 version=TLSv1\.[23]")

    # The same over TLS, without login: the guard holds.
    with smtplib.SMTP("127.0.0.1", port, timeout=scaled(15)) as s:
        s.ehlo("client.example")
        s.starttls(context=secrets.context())
        s.ehlo("client.example")
        code, text = s.mail(SENDER)
        assert code == 250, (code, text)
        code, text = s.rcpt(OUTSIDE)
        assert code == 550 and text.startswith(b"5.7.1 "), (code, text)
        assert b"Relay access denied" in text
        code, text = s.rcpt(INSIDE)
        assert code == 250, (code, text)
        s.rset()
    assert len(up.messages()) == 1
    assert_no_password(d, PASSWORD)


def test_auth_login_mechanism_and_reset_after_starttls(
        world, upstream_factory, relay_factory, secrets):
    """AUTH LOGIN over STARTTLS by hand; STARTTLS is not offered again
    and a second one is 503 5.5.1; the session after the handshake has
    forgotten the EHLO (MAIL before EHLO is 503)."""
    up = upstream_factory()
    d, [port] = start(relay_factory, world, up, secrets,
                      [("127.0.0.1", "auth")])
    with Conn(port) as c:
        check(c.reply(), 220, None)
        assert "STARTTLS" in c.ehlo()
        c.expect("STARTTLS", 220, "2.0.0")
        c.starttls(secrets.context())
        # No EHLO yet: no enhanced status codes either.
        c.expect("MAIL FROM:<%s>" % SENDER, 503, None)
        feats = c.ehlo()
        assert "STARTTLS" not in feats
        assert {"PLAIN", "LOGIN"} <= auth_mechs(feats)
        c.expect("STARTTLS", 503, "5.5.1")
        c.expect("AUTH LOGIN", 334, None, "VXNlcm5hbWU6")
        c.expect(b64(USER), 334, None, "UGFzc3dvcmQ6")
        c.expect(b64(PASSWORD), 235, "2.7.0")
        c.expect("AUTH PLAIN " + plain_b64(USER, PASSWORD), 503, "5.5.1")
        c.expect("MAIL FROM:<%s>" % SENDER, 250, "2.1.0")
        c.expect("RCPT TO:<%s>" % OUTSIDE, 250, "2.1.5")
        c.expect("DATA", 354)
        c.send(body("login mechanism") + b".\r\n")
        check(c.reply(), 250, "2.0.0")
        c.expect("QUIT", 221)
    [rec] = up.wait_messages(1)
    assert rec["rcpts"] == [OUTSIDE]
    assert_no_password(d, PASSWORD)


# --------------------------------------------------------------------------
# 2. implicit TLS, starttls-required

def test_implicit_tls_and_starttls_required(world, upstream_factory,
                                            relay_factory, secrets):
    """SMTP_SSL to a "tls" listener: the greeting comes over TLS, no
    STARTTLS is offered, login and relaying work.  On a
    starttls-required listener MAIL before STARTTLS is 530 5.7.0, and
    after STARTTLS the transaction goes through."""
    up = upstream_factory()
    d, [_, tls_port, req_port] = start(
        relay_factory, world, up, secrets,
        [("127.0.0.1", ""), ("127.0.0.1", "tls auth"),
         ("127.0.0.1", "starttls-required auth")])
    with smtplib.SMTP_SSL("127.0.0.1", tls_port, timeout=scaled(15),
                          context=secrets.context()) as s:
        code, _ = s.ehlo("client.example")
        assert code == 250
        assert not s.has_extn("starttls")
        assert s.has_extn("auth")
        s.login(USER, PASSWORD)
        assert s.sendmail(SENDER, [OUTSIDE], body("implicit tls")) == {}
    [rec] = up.wait_messages(1)
    assert rec["rcpts"] == [OUTSIDE]

    # A clear-text client on the implicit TLS port gets no greeting.
    with Conn(tls_port, timeout=scaled(3)) as c:
        c.send(b"EHLO client.example\r\n")
        try:
            data = c.sock.recv(4096)
        except (ConnectionResetError, socket.timeout):
            data = b""
        assert not data.startswith(b"2"), data

    with Conn(req_port) as c:
        check(c.reply(), 220, None)
        assert "STARTTLS" in c.ehlo()
        c.expect("MAIL FROM:<%s>" % SENDER, 530, "5.7.0")
        c.expect("STARTTLS", 220, "2.0.0")
        c.starttls(secrets.context())
        c.ehlo()
        c.expect("MAIL FROM:<%s>" % SENDER, 250, "2.1.0")
        c.expect("RCPT TO:<%s>" % INSIDE, 250, "2.1.5")
        c.expect("DATA", 354)
        c.send(body("starttls required") + b".\r\n")
        check(c.reply(), 250, "2.0.0")
        c.expect("QUIT", 221)
    msgs = up.wait_messages(2)
    assert msgs[1]["rcpts"] == [INSIDE]


# --------------------------------------------------------------------------
# 3. swaks and curl

def run(argv, timeout=None, input=None):
    return subprocess.run(argv, input=input, stdin=None if input
                          else subprocess.DEVNULL, capture_output=True,
                          timeout=timeout or scaled(30))


def test_swaks_starttls_auth_plain(world, upstream_factory, relay_factory,
                                   secrets):
    need_tool("swaks")
    up = upstream_factory()
    d, [port] = start(relay_factory, world, up, secrets,
                      [("127.0.0.1", "auth")])
    p = run(["swaks", "--server", "127.0.0.1:%d" % port, "--tls",
             "--tls-verify", "--tls-ca-path", secrets.ca,
             "--auth", "PLAIN", "--auth-user", USER,
             "--auth-password", PASSWORD, "--ehlo", "swaks.example",
             "--from", SENDER, "--to", "swaks@elsewhere.org",
             "--header", "Subject: swaks", "--body", "sent by swaks"])
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, out + p.stderr.decode()
    assert "<~  235 2.7.0" in out, out
    [rec] = up.wait_messages(1)
    assert rec["rcpts"] == ["swaks@elsewhere.org"]
    assert b"sent by swaks" in rec["data"]
    d.wait_log(r"event=auth client=\S+ user=alice result=ok")


def test_curl_starttls_and_smtps(world, upstream_factory, relay_factory,
                                 secrets, tmp_path):
    """curl --ssl-reqd smtp:// (STARTTLS) and smtps:// (implicit TLS),
    both with --user and the test CA."""
    need_tool("curl")
    up = upstream_factory()
    d, [port, tls_port] = start(relay_factory, world, up, secrets,
                                [("127.0.0.1", "auth"),
                                 ("127.0.0.1", "tls auth")])
    msg = tmp_path / "msg.eml"
    for i, url in enumerate(("smtp://127.0.0.1:%d" % port,
                             "smtps://127.0.0.1:%d" % tls_port)):
        msg.write_bytes(body("curl %d" % i))
        p = run(["curl", "-sS", "--ssl-reqd", url, "--mail-from", SENDER,
                 "--mail-rcpt", "curl%d@elsewhere.org" % i,
                 "--upload-file", str(msg), "--user",
                 "%s:%s" % (USER, PASSWORD), "--cacert", secrets.ca])
        assert p.returncode == 0, (url, p.stderr.decode())
        msgs = up.wait_messages(i + 1)
        assert msgs[i]["rcpts"] == ["curl%d@elsewhere.org" % i]
        assert b"Subject: curl %d\r\n" % i in msgs[i]["data"]
    assert len(d.log_grep(r"event=auth client=\S+ user=alice "
                          r"result=ok")) == 2
    assert_no_password(d, PASSWORD)


# --------------------------------------------------------------------------
# 4. STARTTLS command injection (CVE-2011-0411)

def test_starttls_injection_is_discarded(world, upstream_factory,
                                         relay_factory, secrets):
    """"STARTTLS\\r\\nMAIL FROM:<a@b>\\r\\n" in one write: the MAIL is
    thrown away, neither run before the handshake nor after it.  The
    first command after the handshake, a RCPT, gets 503 (need MAIL),
    and the log never mentions a@b."""
    up = upstream_factory()
    d, [port] = start(relay_factory, world, up, secrets,
                      [("127.0.0.1", "auth")])
    with Conn(port) as c:
        check(c.reply(), 220, None)
        c.ehlo()
        c.send(b"STARTTLS\r\nMAIL FROM:<a@b>\r\n")
        check(c.reply(), 220, "2.0.0")
        c.starttls(secrets.context())
        # RCPT first: an EHLO would reset a MAIL that was run.
        r = c.cmd("RCPT TO:<%s>" % INSIDE)
        check(r, 503, None, what="RCPT after the handshake")
        assert "need MAIL" in r.message, r.raw
        c.ehlo()
        c.expect("MAIL FROM:<%s>" % SENDER, 250, "2.1.0")
        c.expect("RCPT TO:<%s>" % INSIDE, 250, "2.1.5")
        c.expect("DATA", 354)
        c.send(body("after injection") + b".\r\n")
        check(c.reply(), 250, "2.0.0")
        c.expect("QUIT", 221)
    [rec] = up.wait_messages(1)
    assert rec["sender"] == SENDER
    d.wait_log(r"event=disconnect session=\S+ client=127\.0\.0\.1 "
               r"reason=\S+ messages=1")
    log = d.stderr()
    assert "a@b" not in log, "the injected MAIL shows in the log"


def test_starttls_injection_of_several_commands(world, upstream_factory,
                                                relay_factory, secrets):
    """A longer injection (RSET, MAIL, RCPT, DATA, body) in the
    STARTTLS packet: nothing of it is answered after the handshake, and
    nothing reaches the upstream."""
    up = upstream_factory()
    d, [port] = start(relay_factory, world, up, secrets,
                      [("127.0.0.1", "auth")])
    with Conn(port) as c:
        check(c.reply(), 220, None)
        c.ehlo()
        c.send(b"STARTTLS\r\nRSET\r\nEHLO evil.example\r\n"
               b"MAIL FROM:<evil@b>\r\nRCPT TO:<%s>\r\nDATA\r\n"
               b"Subject: injected\r\n\r\ninjected\r\n.\r\n"
               % INSIDE.encode())
        check(c.reply(), 220, "2.0.0")
        c.starttls(secrets.context())
        r = c.cmd("NOOP")
        check(r, 250, "any", what="first reply after the handshake")
        c.expect("DATA", 503)
        c.expect("QUIT", 221)
    d.wait_log(r"event=disconnect session=\S+ client=127\.0\.0\.1 "
               r"reason=\S+ messages=0")
    assert up.messages() == []
    log = d.stderr()
    assert "evil" not in log


# --------------------------------------------------------------------------
# 5. wrong passwords

def test_wrong_passwords_delay_then_421(world, upstream_factory,
                                        relay_factory, secrets):
    """A failure is 535 5.7.8; each failure makes the next check of the
    address wait a second more, in this session and the next, for a
    right password as for a wrong one; the third failure of a session
    is 421 and the connection closes.  The parent logs each verdict
    with the user and the session, never a password."""
    up = upstream_factory()
    d, [port] = start(relay_factory, world, up, secrets,
                      [("127.0.0.1", "auth")])
    wrong = ["Wrong-Pw-one", "Wrong-Pw-two", "Wrong-Pw-three"]
    with Conn(port, timeout=scaled(15)) as c:
        check(c.reply(), 220, None)
        c.ehlo()
        c.expect("STARTTLS", 220)
        c.starttls(secrets.context())
        assert {"PLAIN", "LOGIN"} <= auth_mechs(c.ehlo())
        c.expect("AUTH PLAIN " + plain_b64(USER, wrong[0]), 535, "5.7.8")
        t = time.monotonic()
        c.expect("AUTH LOGIN " + b64(USER), 334, None, "UGFzc3dvcmQ6")
        c.expect(b64(wrong[1]), 535, "5.7.8")
        assert time.monotonic() - t >= 0.9, "failure answered at once"
        # A failed AUTH leaves the session usable.
        c.expect("NOOP", 250)
        t = time.monotonic()
        c.expect("AUTH PLAIN " + plain_b64(USER, wrong[2]), 421, "4.7.0")
        assert time.monotonic() - t >= 1.9, "failure answered too soon"
        assert c.closed()
    # The right password still works on a new connection, after the
    # address's delay as a wrong one would; a user that does not exist
    # is just a failure.
    with Conn(port, timeout=scaled(15)) as c:
        check(c.reply(), 220, None)
        c.ehlo()
        c.expect("STARTTLS", 220)
        c.starttls(secrets.context())
        c.ehlo()
        t = time.monotonic()
        c.expect("AUTH PLAIN " + plain_b64("nobody", PASSWORD), 535,
                 "5.7.8")
        assert time.monotonic() - t >= 2.9, "failure answered too soon"
        t = time.monotonic()
        c.expect("AUTH PLAIN " + plain_b64(USER, PASSWORD), 235, "2.7.0")
        assert time.monotonic() - t >= 3.9, "success answered sooner"
        c.expect("QUIT", 221)
    fails = d.wait_log(r"event=auth client=127\.0\.0\.1 user=alice "
                       r"result=failed session=[0-9a-f]{16}$", count=3)
    assert len(fails) == 3
    d.wait_log(r"event=auth client=127\.0\.0\.1 user=nobody result=failed")
    d.wait_log(r"event=auth client=127\.0\.0\.1 user=alice result=ok")
    assert_no_password(d, PASSWORD, *wrong)


def test_auth_refusals(world, upstream_factory, relay_factory, secrets):
    """AUTH on a listener without "auth" is 502; an unknown mechanism
    504; AUTH inside a transaction 503; a cancelled exchange 501; bad
    base64 501 — none of them counts towards the 421."""
    up = upstream_factory()
    d, [plain_port, port] = start(relay_factory, world, up, secrets,
                                  [("127.0.0.1", ""),
                                   ("127.0.0.1", "auth")])
    with Conn(plain_port) as c:
        check(c.reply(), 220, None)
        feats = c.ehlo()
        assert auth_mechs(feats) is None, feats
        c.expect("AUTH PLAIN " + plain_b64(USER, PASSWORD), 502, "5.5.1")
    with Conn(port) as c:
        check(c.reply(), 220, None)
        # Loopback: offered in clear text too (SPEC section 8).
        assert {"PLAIN", "LOGIN"} <= auth_mechs(c.ehlo())
        c.expect("AUTH CRAM-MD5", 504, "5.5.4")
        c.expect("AUTH PLAIN", 334)
        c.expect("*", 501)
        c.expect("AUTH PLAIN !!!notbase64", 501, "5.5.2")
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
        c.expect("AUTH PLAIN " + plain_b64(USER, PASSWORD), 503, "5.5.1")
        c.expect("RSET", 250)
        c.expect("AUTH PLAIN " + plain_b64(USER, PASSWORD), 235, "2.7.0")
        c.expect("QUIT", 221)
    assert_no_password(d, PASSWORD)


# --------------------------------------------------------------------------
# 6. not on loopback: AUTH only over TLS

NETNS_CLIENT = r"""
import base64, json, smtplib, ssl, sys
host, port, ca, user, pw, sender, rcpt = sys.argv[1:8]
out = {}
s = smtplib.SMTP(host, int(port), timeout=20)
s.ehlo("netns.example")
out["ehlo1"] = sorted(s.esmtp_features)
out["auth_clear"] = list(s.docmd("AUTH", "PLAIN " + base64.b64encode(
    ("\0%s\0%s" % (user, pw)).encode()).decode()))
s.mail(sender)
out["rcpt_clear"] = list(s.rcpt(rcpt))
s.rset()
ctx = ssl.create_default_context(cafile=ca)
s._host = "localhost"   # the name in the certificate, not the address
s.starttls(context=ctx)
s.ehlo("netns.example")
out["ehlo2"] = sorted(s.esmtp_features)
out["auth_mechs"] = s.esmtp_features.get("auth", "")
out["login"] = list(s.login(user, pw))
out["refused"] = s.sendmail(sender, [rcpt], b"Subject: netns\r\n\r\nx\r\n")
s.quit()
for k, v in out.items():
    if isinstance(v, list):
        out[k] = [x.decode() if isinstance(x, bytes) else x for x in v]
print(json.dumps(out))
"""


def test_no_auth_in_clear_text_off_loopback(world, upstream_factory,
                                            relay_factory, secrets, netns):
    """A client in a network namespace (not loopback) on an "auth"
    listener: EHLO before TLS offers STARTTLS but no AUTH, AUTH is
    538 5.7.11 and the outside recipient 550 5.7.1; after STARTTLS
    AUTH PLAIN LOGIN is offered, login works and the message is
    relayed."""
    up = upstream_factory()
    d, [_, port] = start(relay_factory, world, up, secrets,
                         [("127.0.0.1", ""), (netns.host_ip, "auth")])
    p = netns.run([sys.executable, "-c", NETNS_CLIENT, netns.host_ip,
                   str(port), secrets.ca, USER, PASSWORD, SENDER, OUTSIDE])
    assert p.returncode == 0, p.stderr.decode()
    out = json.loads(p.stdout.decode())
    assert "starttls" in out["ehlo1"], out
    assert "auth" not in out["ehlo1"], out
    assert out["auth_clear"][0] == 538, out
    assert out["auth_clear"][1].startswith("5.7.11 "), out
    assert out["rcpt_clear"][0] == 550, out
    assert out["rcpt_clear"][1].startswith("5.7.1 "), out
    assert "starttls" not in out["ehlo2"], out
    assert {"PLAIN", "LOGIN"} <= set(out["auth_mechs"].upper().split()), out
    assert out["login"][0] == 235, out
    assert out["refused"] == {}, out
    [rec] = up.wait_messages(1)
    assert rec["rcpts"] == [OUTSIDE]
    d.wait_log(r"event=auth client=%s user=alice result=ok"
               % re.escape(netns.ns_ip))
    assert_no_password(d, PASSWORD)


# --------------------------------------------------------------------------
# 7. no secret open in a child; the users file's mode

def fd_targets(pid):
    out = set()
    d = "/proc/%d/fd" % pid
    for name in os.listdir(d):
        try:
            out.add(os.readlink(os.path.join(d, name)))
        except OSError:
            pass
    return out


def test_no_secret_open_in_children(world, upstream_factory, relay_factory,
                                    secrets):
    """With privilege separation (no -n, as root): while an
    authenticated TLS session is open, no child of the parent (session
    workers, relay) has the key, the certificate or the users file
    open, and none runs as root."""
    need_root()
    need_user("_smtpd")
    if not os.path.isdir("/var/empty"):
        missing("no /var/empty (make user creates it)")
    up = upstream_factory()
    d, [port] = start(relay_factory, world, up, secrets,
                      [("127.0.0.1", "auth")], args=("-d",))
    secret_paths = {os.path.realpath(p) for p in
                    (secrets.key, secrets.cert, secrets.users)}
    with smtplib.SMTP("127.0.0.1", port, timeout=scaled(15)) as s:
        s.ehlo("client.example")
        s.starttls(context=secrets.context())
        s.ehlo("client.example")
        s.login(USER, PASSWORD)
        s.mail(SENDER)
        s.rcpt(OUTSIDE)
        # A child is root between its fork and its privilege drop: look
        # once every child is in its sandbox (the drop comes first).
        def sandboxed():
            kids = children_of(d.pid)
            try:
                return kids if all(proc_status(p).get("Seccomp") == "2"
                                   for p in kids) else None
            except OSError:
                return None
        kids = wait_for(sandboxed, scaled(10), "every child sandboxed")
        assert len(d.sessions()) >= 2 and len(d.relays()) == 1, kids
        for pid in kids:
            open_now = {os.path.realpath(t) if t.startswith("/") else t
                        for t in fd_targets(pid)}
            leaked = open_now & secret_paths
            assert not leaked, "child %d has %s open" % (pid, leaked)
            uids = proc_status(pid)["Uid"].split()
            assert "0" not in uids, "child %d runs as root: %s" % (pid, uids)
            gids = proc_status(pid)["Gid"].split()
            assert "0" not in gids, "child %d in group root: %s" % (pid,
                                                                   gids)
        code, _ = s.data(body("privsep"))
        assert code == 250
    [rec] = up.wait_messages(1)
    assert rec["rcpts"] == [OUTSIDE]


def test_users_file_readable_by_others_is_refused(world, upstream_factory,
                                                  relay_factory, secrets,
                                                  tmp_path):
    """A users file with group or other permissions stops the start
    with exit status 1 and a line naming the file."""
    up = upstream_factory()
    loose = users_file(str(tmp_path / "users-loose"), {USER: PASSWORD},
                       mode=0o644)
    port = free_port()
    conf, _ = relay_conf(world, lines=[
        "upstream 127.0.0.1 port %d" % up.port,
        "tls certificate %s key %s" % (secrets.cert, secrets.key),
        "users %s" % loose,
        "listen on 127.0.0.1 port %d auth" % port])
    d = relay_factory("-f", conf, "-c", "relay", args=NOPRIV, listen="",
                      wait=False)
    d.port = port
    d.spawn()
    assert d.wait_exit(scaled(10)) == 1
    err = d.stderr()
    assert loose in err, err
    assert PASSWORD not in err


def test_users_file_long_line_is_refused(world, upstream_factory,
                                         relay_factory, secrets, tmp_path):
    """A users line longer than 1022 octets stops the start with a line
    naming the file: read in pieces, the tail of a long comment became
    an entry of its own (found by regress/fuzz/fuzz_users.c)."""
    up = upstream_factory()
    path = users_file(str(tmp_path / "users-long"), {USER: PASSWORD})
    tail = "mallory " + crypt_hash("guess", str(tmp_path))
    with open(path, "a") as f:
        f.write("# " + "x" * 1021 + tail + "\n")
    port = free_port()
    conf, _ = relay_conf(world, lines=[
        "upstream 127.0.0.1 port %d" % up.port,
        "tls certificate %s key %s" % (secrets.cert, secrets.key),
        "users %s" % path,
        "listen on 127.0.0.1 port %d auth" % port])
    d = relay_factory("-f", conf, "-c", "relay", args=NOPRIV, listen="",
                      wait=False)
    d.port = port
    d.spawn()
    assert d.wait_exit(scaled(10)) == 1
    err = d.stderr()
    assert "%s:3: line too long" % path in err, err


# --------------------------------------------------------------------------
# 8. TLS 1.2 at least

def only_tls11(ctx):
    """Limit ctx to TLS 1.1, with the ciphers and signatures it needs
    (security level 0: OpenSSL 3 refuses SHA-1 above it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


def tls11_client_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return only_tls11(ctx)


def local_tls11_works(secrets):
    """Whether this OpenSSL can do TLS 1.1 at all: a handshake between
    a TLS 1.1 client and a local server that allows it."""
    if not getattr(ssl, "HAS_TLSv1_1", False):
        return False
    try:
        client = tls11_client_context()
        server = only_tls11(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
        server.load_cert_chain(secrets.cert, secrets.key)
    except (ssl.SSLError, ValueError):
        return False
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    lsock.settimeout(scaled(5))
    result = {}

    def serve():
        try:
            conn, _ = lsock.accept()
            conn.settimeout(scaled(5))
            with server.wrap_socket(conn, server_side=True) as t:
                result["server"] = t.version()
        except (OSError, ssl.SSLError) as e:
            result["server_error"] = e

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    ok = False
    try:
        with socket.create_connection(lsock.getsockname(),
                                      scaled(5)) as s:
            with client.wrap_socket(s) as t:
                ok = t.version() == "TLSv1.1"
    except (OSError, ssl.SSLError):
        ok = False
    th.join(scaled(5))
    lsock.close()
    return ok


def test_tls_minimum_is_1_2(world, upstream_factory, relay_factory,
                            secrets):
    """A client that offers only TLS 1.1 fails the handshake, on the
    implicit TLS port and after STARTTLS; one limited to TLS 1.2
    succeeds."""
    need_tls11(local_tls11_works(secrets))
    up = upstream_factory()
    d, [port, tls_port] = start(relay_factory, world, up, secrets,
                                [("127.0.0.1", "auth"),
                                 ("127.0.0.1", "tls auth")])
    with socket.create_connection(("127.0.0.1", tls_port),
                                  scaled(10)) as s:
        with pytest.raises((ssl.SSLError, ConnectionResetError, EOFError)):
            with tls11_client_context().wrap_socket(s) as t:
                t.recv(1)
    with Conn(port) as c:
        check(c.reply(), 220, None)
        c.ehlo()
        c.expect("STARTTLS", 220)
        with pytest.raises((ssl.SSLError, ConnectionResetError, EOFError)):
            c.starttls(tls11_client_context())
            c.cmd("EHLO client.example")
    d.wait_log(r"event=tls-failed session=\S+ client=127\.0\.0\.1",
               count=2)

    ctx12 = secrets.context()
    ctx12.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", tls_port),
                                  scaled(10)) as s:
        with ctx12.wrap_socket(s, server_hostname="localhost") as t:
            assert t.version() == "TLSv1.2"
            c = Conn(0, sock=t)
            check(c.reply(), 220, None)
            c.expect("QUIT", 221)
    d.wait_log(r"event=tls session=\S+ client=127\.0\.0\.1 "
               r"version=TLSv1\.2 ")

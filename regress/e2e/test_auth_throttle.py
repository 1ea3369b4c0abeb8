"""AUTH throttling (SPEC section 10), with yescrypt hashes as a Debian
system writes them:

- a client that hangs up before the verdict still has its failure
  checked, counted and logged, learns nothing sooner than a client
  that waits, and its address is locked out (454 4.7.0) after a few
  failures, whatever it does;
- one address flooding AUTH does not keep users at other addresses
  from logging in (checks are queued per address, taken round-robin);
- an unknown user costs a hash of the users file's own kind.

Two client addresses: loopback and a network namespace (the netns
fixture); loopback is not exempt from AUTH throttling.  The users file is
made with libcrypt through ctypes.
"""
import ctypes
import ctypes.util
import json
import os
import smtplib
import subprocess
import sys
import time

import pytest

from harness import scaled
from relay_harness import (netns, relay_factory,  # noqa: F401
                           upstream_factory, world)
from test_tls_auth import Conn, Secrets, b64, plain_b64, start
from tls_certs import ServerCerts

USERS = {"alice": "Alice-yes-pw", "bob": "Bob-yes-pw", "carol": "Carol-pw",
         "mallory": "Mallory-pw"}
LOCK_FAILURES = 5          # parent/authq.c AUTH_LOCK_FAILURES


def yescrypt(password):
    lib = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong,
                                  ctypes.c_char_p, ctypes.c_int]
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    # Cost 7 (the default is 5): a check the parent's CPU time shows.
    setting = lib.crypt_gensalt(b"$y$", 7, None, 0)
    assert setting and setting.startswith(b"$y$"), setting
    h = lib.crypt(password.encode(), setting)
    assert h and h.startswith(b"$y$"), h
    return h.decode()


class YesSecrets(Secrets):
    """The certificates of test_tls_auth, and a yescrypt users file."""

    def __init__(self, d):
        self.certs = ServerCerts(d)
        self.ca = self.certs.ca
        self.cert = self.certs.cert
        self.key = self.certs.key
        self.users = os.path.join(d, "users")
        fd = os.open(self.users, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                     0o600)
        with os.fdopen(fd, "w") as f:
            for name, pw in USERS.items():
                f.write("%s %s\n" % (name, yescrypt(pw)))


@pytest.fixture(scope="module")
def yes(tmp_path_factory):
    return YesSecrets(str(tmp_path_factory.mktemp("auth-throttle")))


# A client in the namespace: one connection per guess, each given up
# 0.25 s after the AUTH line (a wrong password used to be answered late,
# a right one at once).  Stops at the first 454 or at the deadline.
HANGUP = r"""
import base64, json, smtplib, ssl, sys, time
host, port, ca, user, seconds = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=ca)
end = time.monotonic() + float(seconds)
out = {"attempts": 0, "codes": []}
t0 = time.monotonic()
while time.monotonic() < end:
    s = smtplib.SMTP(host, int(port), timeout=10)
    s._host = "localhost"
    s.starttls(context=ctx)
    s.ehlo("guess.example")
    s.sock.settimeout(0.25)
    guess = "guess-%d" % out["attempts"]
    s.putcmd("AUTH", "PLAIN " + base64.b64encode(
        ("\0%s\0%s" % (user, guess)).encode()).decode())
    out["attempts"] += 1
    try:
        code, _ = s.getreply()
    except (smtplib.SMTPServerDisconnected, OSError):
        code = None
    s.close()
    out["codes"].append(code)
    if code == 454:
        break
out["seconds"] = time.monotonic() - t0
print(json.dumps(out))
"""

# Many connections from loopback, each sending one AUTH with a wrong
# password and hanging up at once, again and again until killed.
FLOOD = r"""
import base64, socket, sys, threading
port, user, n = sys.argv[1:4]
def one(i):
    k = 0
    while True:
        k += 1
        try:
            c = socket.create_connection(("127.0.0.1", int(port)), 10)
            c.sendall(b"EHLO flood.example\r\nAUTH PLAIN " +
                      base64.b64encode(("\0%s\0flood-%d-%d" % (user, i, k))
                                       .encode()) + b"\r\n")
            c.recv(100)
            c.close()
        except OSError:
            pass
for i in range(int(n)):
    threading.Thread(target=one, args=(i,), daemon=True).start()
print("started", flush=True)
threading.Event().wait()
"""

# Users logging in from the namespace (over STARTTLS), one at a time:
# the reply and the seconds each took.
LOGINS = r"""
import json, smtplib, ssl, sys, time
host, port, ca = sys.argv[1:4]
ctx = ssl.create_default_context(cafile=ca)
out = {}
for pair in sys.argv[4:]:
    user, pw = pair.split(":", 1)
    s = smtplib.SMTP(host, int(port), timeout=30)
    s._host = "localhost"
    s.starttls(context=ctx)
    s.ehlo("user.example")
    t = time.monotonic()
    try:
        code = s.login(user, pw)[0]
    except smtplib.SMTPResponseException as e:
        code = e.smtp_code
    out[user] = [code, time.monotonic() - t]
    s.close()
print(json.dumps(out))
"""


def login_time(port, user, password):
    """One AUTH on loopback in clear text: (code, seconds)."""
    with Conn(port, timeout=scaled(20)) as c:
        assert c.reply().code == 220
        c.ehlo()
        t = time.monotonic()
        r = c.cmd("AUTH PLAIN " + plain_b64(user, password))
        return r.code, time.monotonic() - t


def test_hangup_early_is_counted_and_locked_out(world, upstream_factory,
                                                relay_factory, yes, netns):
    """Hanging up 0.25 s after each guess gains nothing: every guess that
    reached the parent is checked, counted and logged, the verdicts of
    the second and later guesses come no sooner than the delay (so the
    client learns nothing of them), and after 5 failures the address is
    locked out: 454 4.7.0, even for the right password.  Loopback users
    are not affected."""
    up = upstream_factory()
    d, [lo, port] = start(relay_factory, world, up, yes,
                          [("127.0.0.1", "auth"), (netns.host_ip, "auth")],
                          users=yes.users)
    p = netns.run([sys.executable, "-c", HANGUP, netns.host_ip, str(port),
                   yes.ca, "alice", str(scaled(25))], timeout=scaled(40))
    assert p.returncode == 0, p.stderr.decode()
    out = json.loads(p.stdout.decode())
    ns = netns.ns_ip.replace(".", r"\.")
    fails = d.wait_log(r"event=auth client=%s user=alice result=failed "
                       r"session=" % ns, count=LOCK_FAILURES)
    d.wait_log(r"event=auth-lockout client=%s failures=%d"
               % (ns, LOCK_FAILURES))
    # The client ended on a 454 (its address had too many checks
    # waiting, or was locked out).
    assert out["codes"][-1] == 454, out
    # Only the first guess (no failure before it) may have been answered
    # within the 0.25 s; the others were checked later, all the same.
    assert out["codes"][0] in (535, None), out
    assert set(out["codes"][1:-1]) <= {None}, out
    assert out["attempts"] > LOCK_FAILURES, out
    assert len(fails) == LOCK_FAILURES
    checked = len(d.log_grep(r"event=auth client=%s .*result=(failed|ok)"
                             % ns))
    assert checked == LOCK_FAILURES, checked
    # Locked out: the right password gets 454 too.
    q = netns.run([sys.executable, "-c", HANGUP.replace("0.25", "10"),
                   netns.host_ip, str(port), yes.ca, "alice", "5"])
    assert json.loads(q.stdout.decode())["codes"] == [454]
    # Another address is not.
    code, _ = login_time(lo, "alice", USERS["alice"])
    assert code == 235
    d.wait_log(r"event=auth client=127\.0\.0\.1 user=alice result=ok "
               r"session=")


def test_flood_from_one_address_spares_others(world, upstream_factory,
                                              relay_factory, yes, netns):
    """While 16 connections from one address (loopback) flood AUTH with
    wrong passwords, hanging up at once, three users at another address
    log in, each within a few seconds."""
    up = upstream_factory()
    d, [lo, port] = start(relay_factory, world, up, yes,
                          [("127.0.0.1", "auth"), (netns.host_ip, "auth")],
                          users=yes.users)
    flood = subprocess.Popen(
        [sys.executable, "-c", FLOOD, str(lo), "mallory", "16"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL)
    try:
        assert flood.stdout.readline().strip() == b"started"
        # The flood is on: hundreds of its connections came.
        d.wait_log(r"event=connect session=\S+ client=127\.0\.0\.1 ",
                   count=300, timeout=scaled(20))
        p = netns.run([sys.executable, "-c", LOGINS, netns.host_ip,
                       str(port), yes.ca] +
                      ["%s:%s" % (u, USERS[u]) for u in
                       ("alice", "bob", "carol")], timeout=scaled(120))
        assert p.returncode == 0, p.stderr.decode()
        results = json.loads(p.stdout.decode())
        ok = [u for u, (code, secs) in results.items()
              if code == 235 and secs < scaled(5)]
        assert sorted(ok) == ["alice", "bob", "carol"], results
    finally:
        flood.kill()
        flood.wait(scaled(10))


def parent_cpu(pid):
    """The parent's CPU seconds so far (user and system)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_unknown_user_costs_a_yescrypt_hash(world, upstream_factory,
                                            relay_factory, yes):
    """With a yescrypt users file, checking a user that does not exist
    costs the parent as much as checking one that does (it used to cost
    a cheap SHA-512 hash, a tenth)."""
    up = upstream_factory()
    d, [lo] = start(relay_factory, world, up, yes, [("127.0.0.1", "auth")],
                    users=yes.users)
    n = LOCK_FAILURES - 1
    t = parent_cpu(d.pid)
    for _ in range(n):
        code, _ = login_time(lo, "bob", USERS["bob"])
        assert code == 235
    known = parent_cpu(d.pid) - t
    t = parent_cpu(d.pid)
    for i in range(n):
        code, _ = login_time(lo, "nobody-%d" % i, "Whatever-pw")
        assert code == 535
    unknown = parent_cpu(d.pid) - t
    assert known >= 0.05, known
    assert unknown >= 0.6 * known, (unknown, known)

"""Shared machinery of the relay- and deliver-mode tests: a recording
upstream server (regress/lib/upstream.py) run as a process, the daemon
with an upstream argument, configuration files, directories the
unprivileged user can reach, log polling, and a network namespace with
a veth pair for tests that need a client that is not on loopback.

Builds on harness.py (wait_for, free_port, Daemon, Client); only the
standard library.  Every wait is a poll with a deadline; every process
started here is killed at teardown; all traffic stays on loopback or
inside the namespace a test creates.
"""
import base64
import ctypes
import email.utils
import glob
import json
import os
import pwd
import random
import re
import select
import shutil
import signal
import smtplib
import socket
import struct
import subprocess
import sys
import tempfile
import time
from email.mime.text import MIMEText

import pytest

from harness import (EXAMPLES, ROOT, Client, Daemon, free_port,
                     group_members, need_tool, scaled, wait_for)
from skips import need_root

UPSTREAM_PY = os.path.join(ROOT, "regress", "lib", "upstream.py")
SEND_CLASSIC = os.path.join(EXAMPLES, "send_classic.py")
PROCESS_MESSAGE = os.path.join(ROOT, "examples", "process_message.py")
PYTHON = sys.executable
IS_ROOT = os.geteuid() == 0
SMTPD_USER = "_smtpd"
QUEUE_USER = "_smtpq"
DELIVER_USER = "_smtpdeliver"


def smtpd_pw(name=SMTPD_USER):
    """The passwd entry of an unprivileged user (the workers' by
    default), or None."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


# --------------------------------------------------------------------------
# messages

def classic_message():
    """The message send_classic.py sends, as smtplib puts it on the wire
    (CRLF line ends, no dot-stuffing needed)."""
    msg = MIMEText("This is the body of the message.")
    msg["To"] = email.utils.formataddr(("Recipient",
                                        "recipient@example.com"))
    msg["From"] = email.utils.formataddr(("Author", "author@example.com"))
    msg["Subject"] = "Simple test message"
    text = msg.as_string()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]
    return "".join(l + "\r\n" for l in lines).encode()


def with_x_peer(data, ip):
    """data with "X-Peer: ip" inserted before its first empty line (after
    the last line if there is none), as the relay forwards it."""
    hdr = b"X-Peer: " + ip.encode() + b"\r\n"
    if data.startswith(b"\r\n"):
        return hdr + data
    i = data.find(b"\r\n\r\n")
    if i == -1:
        return data + hdr
    return data[:i + 2] + hdr + data[i + 2:]


RECEIVED_RE = re.compile(
    rb"\AReceived: from (?P<helo>\S+) "
    rb"\(\[(?P<ip>(?:IPv6:)?[0-9a-fA-F.:]+)\]\)\r\n"
    rb"\tby (?P<host>\S+) \(smtpd\) with (?P<proto>E?SMTP) "
    rb"id (?P<qid>[0-9A-F]{16})"
    rb"(?:\r\n\tfor <(?P<rcpt>[^>\r\n]*)>; |;\r\n\t)"
    rb"(?P<date>[^\r\n]+)\r\n")


def split_received(data):
    """(match of the prepended Received: header, the rest)."""
    m = RECEIVED_RE.match(data)
    assert m, "no Received: header of ours at the top: %r" % data[:300]
    return m, data[m.end():]


def make_message(n, tag="msg", body=b"body line\r\n"):
    """A small message with a unique Message-ID <tag-n@test.example>."""
    return (b"From: <sender@example.com>\r\n"
            b"To: <rcpt@example.net>\r\n"
            b"Subject: %s %d\r\n"
            b"Message-ID: <%s-%d@test.example>\r\n"
            b"\r\n" % (tag.encode(), n, tag.encode(), n)) + body


MSGID_RE = re.compile(rb"^Message-ID: <([^>\r\n]+)>\r?$", re.M | re.I)


def message_id(data):
    m = MSGID_RE.search(data)
    return m.group(1).decode() if m else None


def smtp_send(port, sender, rcpts, data, host="127.0.0.1", timeout=None):
    """One message with smtplib; returns the queue id of the 250 reply."""
    s = smtplib.SMTP(host, port, timeout=timeout or scaled(15))
    try:
        s.ehlo("client.example")
        s.mail(sender)
        for r in rcpts:
            code, text = s.rcpt(r)
            assert code == 250, (r, code, text)
        code, text = s.data(data)
        assert code == 250, (code, text)
    finally:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            s.close()
    return text.decode().rsplit(" ", 1)[-1]


# --------------------------------------------------------------------------
# directories the unprivileged user can reach

class World:
    """A directory under /tmp that _smtpd can traverse (mode 0755): the
    relay chroots into a queue below it, deliver hooks run from it."""

    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="smtpd-e2e-", dir="/tmp")
        os.chmod(self.path, 0o755)

    def sub(self, name, mode=0o755):
        p = os.path.join(self.path, name)
        os.makedirs(p, exist_ok=True)
        os.chmod(p, mode)
        return p

    def file(self, name, text, mode=0o644):
        p = os.path.join(self.path, name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    def conf(self, lines, name="smtpd.conf"):
        return self.file(name, "".join(l + "\n" for l in lines))

    def cleanup(self):
        shutil.rmtree(self.path, ignore_errors=True)


FOOTER = b"smtpd-envelope "
FOOTER_LEN = len(FOOTER) + 9


def inline_envelope(path):
    """The envelope text at the end of message file path (queue format
    4: MESSAGE ENVELOPE "smtpd-envelope LLLLLLLL\n"), or None."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            if size < FOOTER_LEN:
                return None
            f.seek(size - FOOTER_LEN)
            foot = f.read(FOOTER_LEN)
            if not foot.startswith(FOOTER) or not foot.endswith(b"\n"):
                return None
            n = int(foot[len(FOOTER):-1], 16)
            f.seek(size - FOOTER_LEN - n)
            return f.read(n).decode("utf-8", "replace")
    except (OSError, ValueError):
        return None


def inline_files(queue):
    """{name: envelope text} of the files in data/ that hold their
    envelope (queue format 4)."""
    d = os.path.join(queue, "data")
    try:
        names = os.listdir(d)
    except OSError:
        return {}
    out = {}
    for n in names:
        env = inline_envelope(os.path.join(d, n))
        if env is not None:
            out[n] = env
    return out


def queue_files(queue):
    """Names of the files that hold queued messages: those in
    queue/queue (not the corrupt/ directory), and as data/NAME each
    message file in data/ that holds its envelope (queue format 4)."""
    d = os.path.join(queue, "queue")
    try:
        names = [n for n in os.listdir(d)
                 if not os.path.isdir(os.path.join(d, n))]
    except OSError:
        names = []
    names += ["data/" + n for n in inline_files(queue)]
    return sorted(names)


def queue_ids(queue):
    """The queue ids of the queued messages, wherever their envelope."""
    ids = {n[:-4] for n in queue_files(queue) if n.endswith(".env")}
    for env in inline_files(queue).values():
        for line in env.splitlines():
            if line.startswith("id "):
                ids.add(line.split()[1])
    return ids


def message_file(queue, qid):
    """The path of queued message qid's file: data/FILE when its
    envelope has a "file" line (queue formats 3 and 4, a worker's
    message), else queue/ID (smtpd.8, FILES)."""
    env = os.path.join(queue, "queue", qid + ".env")
    if not os.path.exists(env):
        for name, text in inline_files(queue).items():
            if "\nid %s\n" % qid in text:
                return os.path.join(queue, "data", name)
        raise FileNotFoundError(env)
    with open(env) as f:
        for line in f:
            if line.startswith("file "):
                return os.path.join(queue, "data", line.split()[1])
    return os.path.join(queue, "queue", qid)


# --------------------------------------------------------------------------
# the upstream

class Upstream:
    """regress/lib/upstream.py as a process: records each message as a
    JSON file in its directory."""

    def __init__(self, dirpath, port=None, args=(), host="127.0.0.1"):
        self.dir = dirpath
        self.host = host
        self.port = port
        self.args = list(args)
        self.proc = None
        self.log = None
        self._cache = {}

    @property
    def addr(self):
        return "%s:%d" % (self.host, self.port)

    def start(self, timeout=None):
        assert self.proc is None or self.proc.poll() is not None
        os.makedirs(self.dir, exist_ok=True)
        if self.port is None:
            self.port = free_port()
        self.log = open(self.dir.rstrip("/") + ".err", "ab")
        self.proc = subprocess.Popen(
            [PYTHON, UPSTREAM_PY, "--dir", self.dir, "--host", self.host,
             "--port", str(self.port)] + self.args,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self.log, start_new_session=True)
        deadline = time.monotonic() + (timeout or scaled(10))
        line = b""
        for _ in range(1000):
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
            if b"\n" in line:
                break
        if not line.startswith(b"port %d" % self.port):
            self.stop()
            raise AssertionError("upstream did not start on port %d: %r"
                                 % (self.port, line))
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """Kill the server and every connection it has (SIGKILL)."""
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
            self.log.close()
        pgid = self.proc.pid
        wait_for(lambda: not group_members(pgid), scaled(5),
                 "the upstream's processes to die")

    def messages(self):
        """Every message recorded so far, in order: dicts with the peer,
        helo, esmtp, mail_from, sender, rcpts and data (bytes)."""
        out = []
        for path in sorted(glob.glob(os.path.join(self.dir, "*.json"))):
            rec = self._cache.get(path)
            if rec is None:
                with open(path) as f:
                    rec = json.load(f)
                rec["data"] = base64.b64decode(rec["data"])
                rec["file"] = os.path.basename(path)
                self._cache[path] = rec
            out.append(rec)
        return out

    def wait_messages(self, n, timeout=None, what=None):
        """Wait until at least n messages arrived; all of them."""
        return wait_for(lambda: (lambda m: m if len(m) >= n else None)(
            self.messages()), timeout or scaled(15),
            what or "%d messages at the upstream" % n, interval=0.05)


# --------------------------------------------------------------------------
# the daemon

class RelayDaemon(Daemon):
    """build/smtpd with the second positional argument (the upstream in
    relay mode, the program in deliver mode) after the listen address."""

    def __init__(self, workdir, second=None, **kw):
        self.second = second
        super().__init__(workdir, **kw)

    def argv(self):
        argv = super().argv()
        if self.second is not None:
            argv.append(self.second)
        return argv

    def relay_pid(self):
        ps = self.relays()
        return ps[0] if len(ps) == 1 else None

    def wait_log(self, pattern, count=1, timeout=None, what=None):
        """Wait until pattern (a regex) matched count log lines."""
        rx = re.compile(pattern)

        def found():
            ms = [m for m in (rx.search(l) for l in self.log_lines()) if m]
            return ms if len(ms) >= count else None
        return wait_for(found, timeout or scaled(15),
                        what or "%d log line(s) matching %r" % (count,
                                                                pattern),
                        interval=0.02)


def default_args():
    """Privilege separation when we are root (the real thing), -n else."""
    return ("-d",) if IS_ROOT else ("-d", "-n")


def relay_daemon_factory(workdir):
    """Generator behind relay_factory: start(*extra, second=..., ...)
    starts a RelayDaemon (args default to default_args()); afterwards
    every one is torn down and the test fails on what went wrong."""
    daemons = []

    def start(*extra, **kw):
        wait = kw.pop("wait", True)
        kw.setdefault("args", default_args())
        d = RelayDaemon(workdir, extra=extra, **kw)
        daemons.append(d)
        if wait:
            d.start()
        return d

    yield start
    problems = []
    for d in daemons:
        problems += d.teardown()
    if problems:
        pytest.fail("daemon teardown: " + "\n".join(problems),
                    pytrace=False)


@pytest.fixture
def world():
    w = World()
    yield w
    w.cleanup()


@pytest.fixture
def upstream_factory(world):
    """upstream_factory(*args, port=None, name=...) -> a started Upstream
    recording into world/NAME; all are killed at teardown."""
    ups = []

    def make(*args, port=None, name=None, start=True):
        name = name or "upstream%d" % len(ups)
        u = Upstream(os.path.join(world.path, name), port=port, args=args)
        ups.append(u)
        if start:
            u.start()
        return u

    yield make
    for u in ups:
        u.stop()


@pytest.fixture
def relay_factory(tmp_path, world, upstream_factory):
    # world and upstream_factory first: torn down after the daemons.
    yield from relay_daemon_factory(str(tmp_path))


def relay_conf(world, queue=None, lines=(), name="smtpd.conf"):
    """A configuration with a queue in world (and lines); (path, queue)."""
    queue = queue or os.path.join(world.path, "queue")
    return world.conf(["queue " + queue] + list(lines), name), queue


# --------------------------------------------------------------------------
# a client that is not on loopback: a network namespace and a veth pair

class NetNS:
    """A network namespace with one end of a veth pair in it.  The host
    end gets 10.254.N.M+1/30, the namespace end 10.254.N.M+2/30 (a /30
    not in use on the host, so the route to it is only this pair).
    delete() removes both."""

    def __init__(self):
        self.name = None
        self.host_if = None
        self.created = False

    @staticmethod
    def _ip(*args, check=True):
        p = subprocess.run(["ip"] + list(args), stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=scaled(10))
        if check and p.returncode != 0:
            raise OSError("ip %s: %s" % (" ".join(args),
                                        p.stderr.decode().strip()))
        return p

    def enter(self):
        """The argv prefix that runs a program in the namespace.  nsenter
        (util-linux) enters only the network namespace: "ip netns exec"
        and "ip -n" also make a mount namespace with / as a slave, which
        fails where / is no mount point (a chroot, as fresh-ci.sh
        runs the suite in)."""
        return ["nsenter", "--net=/run/netns/" + self.name]

    def _ip_in(self, *args):
        """ip(8) with args inside the namespace."""
        argv = self.enter() + ["ip"] + list(args)
        p = subprocess.run(argv, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=scaled(10))
        if p.returncode != 0:
            raise OSError("%s: %s" % (" ".join(argv),
                                      p.stderr.decode().strip()))
        return p

    def create(self):
        tag = "%d%03d" % (os.getpid() % 100000, random.randrange(1000))
        self.name = "smtpd-e2e-" + tag
        self.host_if = "smh" + tag[-9:]
        ns_if = "smn" + tag[-9:]
        used = self._ip("-o", "-4", "addr", "show").stdout.decode()
        for _ in range(200):
            n = random.randrange(1, 255)
            m = random.randrange(0, 64) * 4
            net = "10.254.%d." % n
            self.host_ip, self.ns_ip = net + str(m + 1), net + str(m + 2)
            if self.host_ip not in used and self.ns_ip not in used:
                break
        self._ip("netns", "add", self.name)
        self.created = True
        self._ip("link", "add", self.host_if, "type", "veth", "peer",
                 "name", ns_if)
        self._ip("link", "set", ns_if, "netns", self.name)
        self._ip("addr", "add", self.host_ip + "/30", "dev", self.host_if)
        self._ip("link", "set", self.host_if, "up")
        self._ip_in("addr", "add", self.ns_ip + "/30", "dev", ns_if)
        self._ip_in("link", "set", ns_if, "up")
        self._ip_in("link", "set", "lo", "up")
        # Usable once the host address left its tentative state.
        wait_for(lambda: "tentative" not in self._ip(
            "-o", "addr", "show", "dev", self.host_if).stdout.decode(),
            scaled(5), "the veth address")
        return self

    def run(self, argv, timeout=None):
        """Run argv inside the namespace; the CompletedProcess."""
        return subprocess.run(self.enter() + list(argv),
                              stdin=subprocess.DEVNULL,
                              capture_output=True,
                              timeout=timeout or scaled(30))

    def inside(self, make):
        """make() run with this thread in the namespace: a socket made
        there stays in it (setns(2) through ctypes; Python 3.11 has no
        os.setns)."""
        libc = ctypes.CDLL(None, use_errno=True)
        clone_newnet = 0x40000000
        with open("/proc/thread-self/ns/net") as home, \
                open("/run/netns/" + self.name) as there:
            if libc.setns(there.fileno(), clone_newnet) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            try:
                return make()
            finally:
                if libc.setns(home.fileno(), clone_newnet) != 0:
                    raise OSError(ctypes.get_errno(), "setns back")

    def client(self, port, **kw):
        """A harness Client connected from the namespace's address."""
        return self.inside(lambda: Client(port, self.host_ip, **kw))

    def reset_connection(self, port):
        """Connect from the namespace and close at once with a RST
        (SO_LINGER 0): the server finds a dead socket in accept()."""
        def make():
            s = socket.create_connection((self.host_ip, port), scaled(5))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
            s.close()
        self.inside(make)

    def delete(self):
        if self.host_if:
            self._ip("link", "del", self.host_if, check=False)
        if self.created:
            # Kill what may still run in it, then remove it.
            p = self._ip("netns", "pids", self.name, check=False)
            for pid in p.stdout.decode().split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            self._ip("netns", "del", self.name, check=False)
            self.created = False


@pytest.fixture
def netns():
    """A fresh namespace + veth pair; skips only when not root (then it
    cannot apply); as root, any failure to make it fails the test."""
    need_root()
    need_tool("ip", "iproute2")
    ns = NetNS()
    try:
        ns.create()
    except (OSError, subprocess.SubprocessError, AssertionError) as e:
        # As root nothing should stop it: a failure here is a fault of
        # the machine or of this code, never a reason to skip.
        ns.delete()
        pytest.fail("cannot create a network namespace: %s" % e)
    yield ns
    ns.delete()

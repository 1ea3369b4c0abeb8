"""Shared machinery of the end-to-end tests: the daemon under test, a raw
SMTP client, process inspection and bounded waits.

Only the standard library.  Every wait is a poll with a deadline; every
loop is bounded in count and time; every process started here is killed
by its owner's teardown.
"""
import os
import re
import select
import signal
import socket
import subprocess
import time

# Every skip condition and its reason: skips.py.
from skips import IN_CI, have_ipv6_loopback, missing, need_tool  # noqa: F401

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SMTPD_BIN = os.environ.get("SMTPD_BIN", os.path.join(ROOT, "build", "smtpd"))
def _examples():
    """The shared reference files: beside the checkout, as ../shared; for
    a clone made elsewhere (git clone . /tmp/x), beside the repository it
    was cloned from, when that is a local path."""
    here = os.path.join(os.path.dirname(ROOT), "shared", "examples")
    if os.path.isdir(here):
        return here
    try:
        url = subprocess.run(["git", "-C", ROOT, "config", "--get",
                              "remote.origin.url"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return here
    if url.startswith("file://"):
        url = url[len("file://"):]
    if url.startswith("/"):
        origin = os.path.join(os.path.dirname(os.path.normpath(url)),
                              "shared", "examples")
        if os.path.isdir(origin):
            return origin
    return here


EXAMPLES = os.environ.get("SMTPD_EXAMPLES") or _examples()
VALGRIND = bool(os.environ.get("SMTPD_VALGRIND"))
# Deadlines stretch under valgrind (or when asked to).
SCALE = float(os.environ.get("SMTPD_TIMEOUT_SCALE", "10" if VALGRIND else "1"))



def _sanitized(path):
    """Whether the daemon binary was built with ASan or UBSan."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    return b"__asan_init" in data or b"__ubsan_handle" in data


SANITIZED = _sanitized(SMTPD_BIN)


def sandbox_env_ok(env):
    """Whether env (a child's environment, a list of b"NAME=value") holds
    nothing of the parent's: empty, but for the sanitizers' options in a
    sanitizer build."""
    allowed = (b"ASAN_OPTIONS=", b"UBSAN_OPTIONS=") if SANITIZED else ()
    return all(e.startswith(allowed) for e in env) if allowed else not env


HOSTNAME = socket.gethostname()
SYSTEM_CONF = "/etc/smtpd/smtpd.conf"
CRLF = b"\r\n"
QUEUED_RE = re.compile(r"^Ok: queued as ([0-9A-Fa-f]{16})$")
ENH_RE = re.compile(r"^([245]\.\d{1,3}\.\d{1,3}) ")


def scaled(seconds):
    return seconds * SCALE


class WaitTimeout(AssertionError):
    pass


def wait_for(cond, timeout, what=None, interval=0.01):
    """Poll cond() until it returns something true; return that value.

    Raises WaitTimeout (an AssertionError) once timeout seconds passed.
    The number of polls is bounded by timeout / interval + 1.
    """
    deadline = time.monotonic() + timeout
    polls = int(timeout / interval) + 2
    last = None
    for _ in range(polls):
        last = cond()
        if last:
            return last
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(interval, left))
    last = cond()
    if last:
        return last
    raise WaitTimeout("timed out after %.2fs waiting for %s (last: %r)"
                      % (timeout, what or getattr(cond, "__name__", "it"),
                         last))


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    """A TCP port free on host right now (the kernel picks it)."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# processes

def proc_stat(pid):
    """(state, ppid, pgrp) of pid, or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[2])


def alive(pid):
    st = proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def sigstop(pid, timeout=None):
    """SIGSTOP pid and wait until it is really stopped: until then it may
    still be in epoll_wait and be the one the kernel wakes."""
    os.kill(pid, signal.SIGSTOP)
    wait_for(lambda: (proc_stat(pid) or ("gone",))[0] in ("T", "t"),
             timeout or scaled(5), "process %d to stop" % pid,
             interval=0.001)


def all_pids():
    return [int(n) for n in os.listdir("/proc") if n.isdigit()]


def group_members(pgid):
    """Live (non-zombie) processes of process group pgid."""
    out = []
    for pid in all_pids():
        st = proc_stat(pid)
        if st is not None and st[2] == pgid and st[0] not in ("Z", "X"):
            out.append(pid)
    return sorted(out)


def children_of(ppid):
    """Live children of ppid (from /proc/<ppid>/task/*/children)."""
    kids = set()
    try:
        tasks = os.listdir("/proc/%d/task" % ppid)
    except OSError:
        return []
    for t in tasks:
        try:
            with open("/proc/%d/task/%s/children" % (ppid, t)) as f:
                kids.update(int(x) for x in f.read().split())
        except OSError:
            pass
    return sorted(p for p in kids if alive(p))


def cmdline(pid):
    """The process title: the first NUL-terminated field of cmdline.
    Under valgrind the title is valgrind's: the role comes from the
    hidden -X argument of the child instead."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw.split(b"\0")
    title = fields[0].decode("utf-8", "replace")
    if VALGRIND and "valgrind" in title or "memcheck" in title:
        if b"-X" in fields and fields.index(b"-X") + 1 < len(fields):
            return "smtpd: " + fields[fields.index(b"-X") + 1].decode()
        return "smtpd: parent"
    return title


def proc_status(pid):
    """/proc/PID/status as a dict of its fields (strings)."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


# --------------------------------------------------------------------------
# the SMTP client

class Reply:
    """One complete SMTP reply: code and the text of each line."""

    def __init__(self, code, lines, raw):
        self.code = code
        self.lines = lines
        self.raw = raw

    @property
    def text(self):
        return self.lines[-1]

    @property
    def enh(self):
        m = ENH_RE.match(self.lines[0])
        return m.group(1) if m else None

    @property
    def message(self):
        """The text of the last line without its enhanced code."""
        m = ENH_RE.match(self.lines[-1])
        return self.lines[-1][m.end():] if m else self.lines[-1]

    def __repr__(self):
        return "Reply(%r)" % self.raw


class SMTPError(AssertionError):
    pass


class Client:
    """A raw SMTP client: exact bytes out, complete replies in."""

    def __init__(self, port, host="127.0.0.1", timeout=None,
                 family=socket.AF_INET, connect_timeout=None, rcvbuf=None):
        self.timeout = timeout if timeout is not None else scaled(10)
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(connect_timeout or self.timeout)
        self.sock.connect((host, port))
        self.sock.settimeout(None)
        self.sock.setblocking(False)
        self.buf = b""
        self.eof = False
        self.local_port = self.sock.getsockname()[1]

    # -- output
    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        view = memoryview(data)
        deadline = time.monotonic() + self.timeout
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SMTPError("send timed out with %d bytes left"
                                % len(view))
            _, w, _ = select.select([], [self.sock], [], left)
            if not w:
                continue
            try:
                n = self.sock.send(view)
            except BlockingIOError:
                continue
            view = view[n:]

    # -- input
    def _fill(self, deadline):
        """Read what is there; False on EOF.  Raises on time-out."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise SMTPError("timed out; have %r" % self.buf[-300:])
        r, _, _ = select.select([self.sock], [], [], left)
        if not r:
            raise SMTPError("timed out; have %r" % self.buf[-300:])
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return True
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_line(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        for _ in range(100000):
            i = self.buf.find(b"\n")
            if i != -1:
                line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
                return line
            if self.eof or not self._fill(deadline):
                raise SMTPError("connection closed; have %r" % self.buf)
        raise SMTPError("no line")

    def reply(self, timeout=None):
        """The next complete (possibly multi-line) reply."""
        deadline = time.monotonic() + (timeout or self.timeout)
        lines, raw, code = [], b"", None
        for _ in range(1000):
            line = self.read_line(max(0.001, deadline - time.monotonic()))
            raw += line
            m = re.match(rb"^(\d{3})([ -])(.*)\r\n\Z", line, re.S)
            if m is None:
                raise SMTPError("malformed reply line %r" % line)
            if code is not None and int(m.group(1)) != code:
                raise SMTPError("code changed inside a reply: %r" % raw)
            code = int(m.group(1))
            lines.append(m.group(3).decode("utf-8", "replace"))
            if m.group(2) == b" ":
                return Reply(code, lines, raw)
        raise SMTPError("reply of more than 1000 lines")

    def replies(self, n, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        return [self.reply(max(0.001, deadline - time.monotonic()))
                for _ in range(n)]

    def cmd(self, line):
        if isinstance(line, str):
            line = line.encode()
        self.send(line + CRLF)
        return self.reply()

    def expect(self, line, code, enh=None, text=None):
        """Send line, check the reply's code, enhanced code, text."""
        r = self.cmd(line)
        check(r, code, enh, text, what=line)
        return r

    def wait_closed(self, timeout=None):
        """True once the server closed; anything it sent is an error."""
        deadline = time.monotonic() + (timeout or self.timeout)
        for _ in range(100000):
            if self.buf:
                raise SMTPError("unexpected data before close: %r"
                                % self.buf)
            if self.eof:
                return True
            self._fill(deadline)
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # -- conversations
    def greeting(self, hostname=None):
        r = self.reply()
        check(r, 220, None, "%s ESMTP smtpd" % (hostname or HOSTNAME),
              what="greeting")
        return r

    def ehlo(self, name="client.example"):
        r = self.cmd("EHLO " + name)
        check(r, 250, what="EHLO")
        return r

    def send_message(self, body, sender="author@example.com",
                     rcpts=("recipient@example.com",), esmtp=True):
        """MAIL, RCPT..., DATA, body, dot: returns the queue id."""
        if isinstance(body, str):
            body = body.encode()
        self.expect("MAIL FROM:<%s>" % sender, 250,
                    "2.1.0" if esmtp else None)
        for r in rcpts:
            self.expect("RCPT TO:<%s>" % r, 250, "2.1.5" if esmtp else None)
        self.expect("DATA", 354)
        self.send(body + b".\r\n")
        r = self.reply()
        check(r, 250, "2.0.0" if esmtp else None, what="end of data")
        m = QUEUED_RE.match(r.message)
        if m is None:
            raise SMTPError("bad queued reply %r" % r.raw)
        return m.group(1)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


NO_ENH = None


def check(r, code, enh=NO_ENH, text=None, what=None):
    """Assert reply r: exact code; enh a string (that exact enhanced
    code), None (no enhanced code at all) or "any"; text the exact rest.
    """
    where = " (for %r)" % (what,) if what is not None else ""
    assert r.code == code, "expected %d%s, got %r" % (code, where, r.raw)
    if enh == "any":
        pass
    elif enh is None:
        assert r.enh is None, "unexpected enhanced code%s: %r" % (where,
                                                                 r.raw)
    else:
        assert r.enh == enh, "expected %d %s%s, got %r" % (code, enh, where,
                                                           r.raw)
    if text is not None:
        assert r.message == text, "expected text %r%s, got %r" % (
            text, where, r.raw)
    return r


# --------------------------------------------------------------------------
# debug-mode output

BLOCK_START = "---------- MESSAGE FOLLOWS ----------\n"
BLOCK_END = "------------ END MESSAGE ------------\n"


def split_blocks(out):
    """Split debug output into blocks; asserts nothing lies between."""
    blocks = []
    pos = 0
    for _ in range(100000):
        if pos == len(out):
            return blocks
        assert out.startswith(BLOCK_START, pos), \
            "garbage in output at %d: %r" % (pos, out[pos:pos + 200])
        end = out.find(BLOCK_END, pos)
        assert end != -1, "unterminated block at %d: %r" % (pos, out[pos:])
        end += len(BLOCK_END)
        block = out[pos:end]
        assert block.count(BLOCK_START) == 1, "interleaved: %r" % block
        blocks.append(block)
        pos = end
    raise AssertionError("too many blocks")


def debug_block(lines, peer="127.0.0.1"):
    """The block debug mode prints for a message of these header and
    body lines (a list of str; "" separates header and body), by Python
    3.11's rules: the lines are joined as the data was and cut again with
    str.splitlines(); X-Peer before the first empty line, none without
    one."""
    out = [BLOCK_START.rstrip("\n")]
    seen_empty = False
    for line in "\n".join(lines).splitlines():
        if line == "" and not seen_empty:
            out.append("X-Peer: " + peer)
            seen_empty = True
        out.append(line)
    out.append(BLOCK_END.rstrip("\n"))
    return "\n".join(out) + "\n"


def message(subject, body_lines=("hello",), extra_headers=()):
    """(wire bytes, expected lines) of a small test message."""
    lines = ["From: a@example.com", "To: b@example.com",
             "Subject: " + subject] + list(extra_headers) + [""] + \
        list(body_lines)
    wire = "".join(l + "\r\n" for l in lines).encode()
    return wire, lines


# --------------------------------------------------------------------------
# the daemon

# What -d puts before each line: an RFC 3339 time (UTC, milliseconds)
# and the severity.
LOG_STAMP_RE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
    r"(?:debug|info|notice|warning|error|crit) (?=smtpd\[)")
LOG_CONNECT_RE = re.compile(
    r"^smtpd\[(\d+)\]: session: event=connect session=([0-9a-f]+) "
    r"client=(\S+) port=(\d+)$")


class Daemon:
    """One run of build/smtpd in the foreground, in its own session."""

    def __init__(self, workdir, args=("-d", "-n"), extra=(), listen=None,
                 host="127.0.0.1", workers=2, env=None, family=None,
                 hostname=None, binary=None):
        self.workdir = workdir
        self.binary = binary or SMTPD_BIN
        self.hostname = hostname or HOSTNAME
        self.host = host
        self.family = family or (socket.AF_INET6 if ":" in host
                                 else socket.AF_INET)
        self.port = None
        self.listen = listen
        self.args = list(args) + list(extra)
        if os.path.exists(SYSTEM_CONF) and "-f" not in self.args:
            # Hermetic: the machine's configuration is not the test's.
            empty = os.path.join(workdir, "empty.conf")
            open(empty, "w").close()
            self.args = ["-f", empty] + self.args
        self.env = dict(os.environ)
        if workers is not None:
            self.env["SMTPD_WORKERS"] = str(workers)
        if env:
            self.env.update(env)
        self.workers = workers
        self.proc = None
        self.pgid = None
        self.rc = None
        self.clients = []
        self.expect_rc = 0            # teardown: exit status of SIGTERM
        self.allow_child_death = False
        n = len([x for x in os.listdir(workdir) if x.startswith("stdout")])
        self.out_path = os.path.join(workdir, "stdout%d" % n)
        self.err_path = os.path.join(workdir, "stderr%d" % n)

    # -- start and stop
    def argv(self):
        if self.listen is None:
            self.port = free_port(self.family, self.host)
            where = ("[%s]:%d" % (self.host, self.port)
                     if ":" in self.host else "%s:%d" % (self.host,
                                                          self.port))
        else:
            where = self.listen
        argv = [self.binary] + self.args + ([where] if where else [])
        if VALGRIND:
            argv = ["valgrind", "-q", "--trace-children=yes",
                    "--error-exitcode=99"] + argv
        return argv

    def spawn(self, argv=None):
        """Start without waiting for anything."""
        assert os.access(self.binary, os.X_OK), \
            "no daemon binary at %s (run make, or set SMTPD_BIN)" % \
            self.binary
        self.out = open(self.out_path, "wb")
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(
            argv or self.argv(), stdin=subprocess.DEVNULL, stdout=self.out,
            stderr=self.err, env=self.env, start_new_session=True,
            cwd=self.workdir)
        self.pgid = self.proc.pid
        return self

    def start(self, timeout=None):
        """Start and wait for a 220 banner on the listener."""
        self.spawn()
        timeout = timeout or scaled(10)

        def banner():
            if self.proc.poll() is not None:
                raise AssertionError("daemon exited with %s: %s" % (
                    self.proc.returncode, self.stderr()))
            try:
                c = Client(self.port, self.host, family=self.family,
                           timeout=scaled(3), connect_timeout=0.5)
            except OSError:
                return None
            try:
                r = c.reply()
                c.send(b"QUIT\r\n")
                c.reply()
                return r
            except SMTPError:
                return None
            finally:
                c.close()
        r = wait_for(banner, timeout, "the 220 banner", interval=0.02)
        check(r, 220, None, "%s ESMTP smtpd" % self.hostname,
              what="banner")
        if self.workers is not None:
            self.wait_workers(self.workers)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=None):
        """Signal the parent and wait for it: its exit status."""
        if self.running():
            self.proc.send_signal(sig)
        self.rc = self.proc.wait(timeout or scaled(20))
        return self.rc

    def wait_exit(self, timeout=None):
        self.rc = self.proc.wait(timeout or scaled(20))
        return self.rc

    def teardown(self):
        """Stop the run, kill leftovers, and report what went wrong."""
        problems = []
        for c in self.clients:
            c.close()
        if self.proc is None:
            return problems
        stopped_here = False
        if self.running():
            stopped_here = True
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.rc = self.proc.wait(scaled(20))
            except subprocess.TimeoutExpired:
                problems.append("parent did not stop within %.0fs of SIGTERM"
                                % scaled(20))
        else:
            self.rc = self.proc.poll()
        if group_members(self.pgid):
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(scaled(5))
        try:
            wait_for(lambda: not group_members(self.pgid), scaled(5),
                     "the process group to die")
        except WaitTimeout:
            problems.append("processes of the run left: %s" %
                            group_members(self.pgid))
        self.out.close()
        self.err.close()
        if stopped_here and self.expect_rc is not None and \
                self.rc != self.expect_rc:
            problems.append("exit status %s after SIGTERM, expected %s"
                            % (self.rc, self.expect_rc))
        log = self.stderr()
        if not self.allow_child_death and "event=child-died" in log:
            problems.append("a child died: %s" % "; ".join(
                l for l in log.splitlines() if "child-died" in l))
        for bad in ("AddressSanitizer", "runtime error:",
                    "LeakSanitizer", "UndefinedBehaviorSanitizer"):
            if bad in log:
                problems.append("sanitizer report in the log (%s)" % bad)
        if problems:
            problems.append("log tail:\n" + "\n".join(log.splitlines()[-30:]))
        return problems

    # -- output
    def stdout(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "surrogateescape")

    def stdout_bytes(self):
        with open(self.out_path, "rb") as f:
            return f.read()

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_lines(self, stamped=False):
        """Complete lines of the log (a partial last line is left out),
        without the time stamp and severity that start each line under
        -d (SPEC 9) unless stamped: patterns match from "smtpd[pid]:"."""
        text = self.stderr()
        lines = text.split("\n")[:-1]
        if stamped:
            return lines
        return [LOG_STAMP_RE.sub("", l, count=1) for l in lines]

    def log_grep(self, pattern):
        rx = re.compile(pattern)
        return [m for m in (rx.search(l) for l in self.log_lines()) if m]

    def blocks(self):
        return split_blocks(self.stdout())

    def wait_blocks(self, n, timeout=None):
        """Wait until stdout holds at least n complete blocks."""
        def enough():
            out = self.stdout()
            k = out.count(BLOCK_END)
            return k >= n and out.endswith(BLOCK_END)
        wait_for(enough, timeout or scaled(10), "%d printed messages" % n)
        return self.blocks()

    # -- clients
    def client(self, timeout=None, greet=True, rcvbuf=None):
        c = Client(self.port, self.host, family=self.family, timeout=timeout,
                   rcvbuf=rcvbuf)
        self.clients.append(c)
        if greet:
            c.greeting(self.hostname)
        return c

    # -- children
    def children(self):
        return children_of(self.pid)

    def sessions(self):
        return [p for p in self.children() if cmdline(p) == "smtpd: session"]

    def relays(self):
        return [p for p in self.children() if cmdline(p) == "smtpd: relay"]

    def wait_workers(self, n, timeout=None, exclude=()):
        """Wait for n session workers (ready: in their sandbox)."""
        def ready():
            ws = [p for p in self.sessions() if p not in exclude]
            if len(ws) != n:
                return None
            for p in ws:
                try:
                    # The valgrind build has no filter (make valgrind).
                    if (proc_status(p).get("Seccomp") != "2" and
                            not VALGRIND):
                        return None
                except OSError:
                    return None
            return ws
        return wait_for(ready, timeout or scaled(5), "%d workers" % n)

    def worker_of(self, client, timeout=None):
        """The pid of the worker that logged client's connection."""
        port = str(client.local_port)

        def find():
            for l in reversed(self.log_lines()):
                m = LOG_CONNECT_RE.match(l)
                if m and m.group(4) == port:
                    return int(m.group(1))
            return None
        return wait_for(find, timeout or scaled(5),
                        "the connect line of port %s" % port)


def daemon_factory(workdir):
    """Generator behind the smtpd_factory fixture: yields start(), which
    starts a Daemon; afterwards tears every one down and fails the test
    on what went wrong."""
    import pytest
    daemons = []

    def start(*extra, **kw):
        wait = kw.pop("wait", True)
        d = Daemon(workdir, extra=extra, **kw)
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

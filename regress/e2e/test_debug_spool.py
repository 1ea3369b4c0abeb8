"""Debug mode's spool files (issue 13): a session keeps the relay's
memfd from one message to the next (IMSG_MSG_KEPT), its messages one
after the other in it, emptied once it holds 4 KiB, so a kept session
makes one spool file, not one a message; a shorter message after a
longer one prints only itself; every kept file is given back when its
session ends, however it ends; and a print that cannot be flushed is
answered 451."""
import os
import re
import socket
import struct
import time

from harness import scaled, wait_for
from skips import need_root, need_tool
from strace_tool import strace_pid, strace_stop

HEAD = b"---------- MESSAGE FOLLOWS ----------\n"
TAIL = b"------------ END MESSAGE ------------\n"


class Client:
    """A raw SMTP client that reads one reply per command."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=scaled(10))
        self.buf = b""
        assert self.reply() == 220
        assert self.cmd(b"EHLO client.example") == 250

    def reply(self):
        deadline = time.monotonic() + scaled(10)
        while True:
            while b"\r\n" not in self.buf:
                left = deadline - time.monotonic()
                assert left > 0, "no reply (got %r)" % self.buf
                self.sock.settimeout(left)
                chunk = self.sock.recv(4096)
                assert chunk, "connection closed (got %r)" % self.buf
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            if line[3:4] != b"-":
                return int(line[:3])

    def cmd(self, line):
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def message(self, body):
        assert self.cmd(b"MAIL FROM:<a@example.com>") == 250
        assert self.cmd(b"RCPT TO:<b@example.com>") == 250
        assert self.cmd(b"DATA") == 354
        return self.cmd(body + b".")

    def close(self):
        self.sock.close()


def body(tag, n):
    return b"Subject: %s\r\n\r\n" % tag + b"".join(
        b"%s line %d\r\n" % (tag, i) for i in range(n))


def printed(tag, n):
    return (HEAD + b"Subject: %s\nX-Peer: 127.0.0.1\n\n" % tag +
            b"".join(b"%s line %d\n" % (tag, i) for i in range(n)) + TAIL)


def wait_printed(d, n):
    wait_for(lambda: d.stdout_bytes().count(TAIL) >= n, scaled(20),
             "%d printed messages" % n)
    return d.stdout_bytes()


def relay_of(d):
    return wait_for(lambda: (d.relays() or [None])[0], scaled(5),
                    "the relay process")


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def test_shorter_message_after_longer_prints_itself(smtpd_factory):
    """Nothing of the long message shows in the short one printed after
    it, in either order, in one session."""
    d = smtpd_factory()
    c = Client(d.port)
    sizes = [("long", 200), ("short", 2), ("one", 1), ("mid", 40)]
    for tag, n in sizes:
        assert c.message(body(tag.encode(), n)) == 250
    assert c.cmd(b"QUIT") == 221
    c.close()
    out = wait_printed(d, len(sizes))
    assert out == b"".join(printed(t.encode(), n) for t, n in sizes)


def test_kept_session_makes_one_spool_file(smtpd_factory, tmp_path):
    """strace of the relay: five messages in one session, one
    memfd_create (before the session kept its file: five), and no
    descriptor passed after the first."""
    need_root()
    need_tool("strace")
    d = smtpd_factory()
    relay = relay_of(d)
    out = str(tmp_path / "strace.out")
    p = strace_pid(relay, "-e", "trace=memfd_create,sendmsg", out=out)
    try:
        c = Client(d.port)
        for i in range(5):
            assert c.message(body(b"m%d" % i, 3)) == 250
        assert c.cmd(b"QUIT") == 221
        c.close()
        wait_printed(d, 5)
    finally:
        strace_stop(p)
    with open(out) as f:
        trace = f.read()
    assert len(re.findall(r"memfd_create\(", trace)) == 1, trace
    # Only the first message's file went over as a descriptor.
    assert len(re.findall(r"SCM_RIGHTS", trace)) == 1, trace


def test_kept_files_given_back_when_sessions_end(smtpd_factory):
    """Sessions that end after a message by QUIT, by a reset of the
    connection, after RSET, or in the middle of the next message's data:
    the relay and the workers are back to the descriptors they had."""
    d = smtpd_factory()
    relay = relay_of(d)
    workers = d.wait_workers(2)
    # One session first, so that whatever is opened once is open.
    c = Client(d.port)
    assert c.message(body(b"warm", 1)) == 250
    assert c.cmd(b"QUIT") == 221
    c.close()
    wait_printed(d, 1)

    def counts():
        return [fds(relay)] + [fds(w) for w in workers]
    # The warm session's file is given back once the counts stop moving.
    base, deadline = counts(), time.monotonic() + scaled(10)
    while True:
        time.sleep(0.2)
        now = counts()
        if now == base:
            break
        assert time.monotonic() < deadline, "descriptors still moving"
        base = now
    clients = []
    for i in range(12):
        c = Client(d.port)
        assert c.message(body(b"s%d" % i, 2)) == 250
        clients.append(c)
    # Each holds its kept file now: the relay has one per session more.
    wait_for(lambda: fds(relay) >= base[0] + 12, scaled(10),
             "a kept spool file per session in the relay")
    for i, c in enumerate(clients):
        kind = i % 4
        if kind == 0:
            assert c.cmd(b"QUIT") == 221
        elif kind == 1:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                              struct.pack("ii", 1, 0))
        elif kind == 2:
            assert c.cmd(b"RSET") == 250
            assert c.cmd(b"QUIT") == 221
        else:
            assert c.cmd(b"MAIL FROM:<a@example.com>") == 250
            assert c.cmd(b"RCPT TO:<b@example.com>") == 250
            assert c.cmd(b"DATA") == 354
            c.sock.sendall(b"Subject: never ends\r\n\r\npart")
        c.close()
    wait_for(lambda: counts() == base, scaled(10),
             "the relay and workers back to %r descriptors" % (base,))
    assert d.stdout_bytes().count(TAIL) == 13


def trace_relay(d, tmp_path, calls, send):
    """strace the relay for calls while send() runs; the trace."""
    relay = relay_of(d)
    out = str(tmp_path / "strace.out")
    p = strace_pid(relay, "-e", "trace=" + calls, out=out)
    try:
        send()
    finally:
        strace_stop(p)
    with open(out) as f:
        return f.read()


def test_kept_file_emptied_once_it_holds_a_page(smtpd_factory, tmp_path):
    """A kept session's messages follow each other in its file, which is
    emptied (ftruncate) only once it holds 4 KiB: small messages, one
    larger than that between them, each printed as itself; the relay
    measures each with the read of it (no fstat), and the worker's
    descriptor appends (no lseek)."""
    need_root()
    need_tool("strace")
    d = smtpd_factory()
    sizes = [("s%d" % i, 3) for i in range(12)] + [("big", 400)] + \
        [("t%d" % i, 5) for i in range(12)]

    def send():
        c = Client(d.port)
        for tag, n in sizes:
            assert c.message(body(tag.encode(), n)) == 250
        assert c.cmd(b"QUIT") == 221
        c.close()
        wait_printed(d, len(sizes))
    trace = trace_relay(d, tmp_path, "ftruncate,lseek,fstat,newfstatat,"
                        "pread64", send)
    out = d.stdout_bytes()
    assert out == b"".join(printed(t.encode(), n) for t, n in sizes)
    # The messages are ~90 bytes: one truncation for dozens of them,
    # and one for the big one.
    truncs = len(re.findall(r"ftruncate\(", trace))
    assert 1 <= truncs <= 4, trace
    assert len(re.findall(r"pread64\(", trace)) == len(sizes), trace
    assert not re.search(r"lseek\(|fstat\(|newfstatat\(", trace), trace


def test_print_failure_answers_451(smtpd_factory):
    """Standard output that cannot be written (/dev/full): the flush that
    holds a message fails, and its client gets 451, never 250; the log
    says result=tempfail, never printed; the session goes on."""
    d = smtpd_factory(wait=False)
    d.out_path = "/dev/full"
    d.start()
    c = Client(d.port)
    for i in range(3):
        assert c.message(body(b"m%d" % i, 2)) == 451
    assert c.cmd(b"QUIT") == 221
    c.close()
    wait_for(lambda: len(d.log_grep(r"event=delivery .*result=tempfail"))
             == 3, scaled(10), "three tempfail deliveries logged")
    assert not d.log_grep(r"result=printed")

"""PIPELINING (RFC 2920): every reply, in order; nothing is refused
because input is buffered."""
import fcntl
import os
import select
import signal
import socket
import struct
import termios
import time

import pytest

from harness import check, debug_block, message, scaled, sigstop, wait_for


@pytest.fixture
def c(smtpd):
    cl = smtpd.client()
    cl.ehlo()
    return cl


def test_envelope_in_one_write(smtpd, c):
    c.send(b"MAIL FROM:<a@example.com>\r\n"
           b"RCPT TO:<b1@example.com>\r\n"
           b"RCPT TO:<b2@example.com>\r\n"
           b"RCPT TO:<b3@example.com>\r\n"
           b"DATA\r\n")
    check(c.reply(), 250, "2.1.0")
    for _ in range(3):
        check(c.reply(), 250, "2.1.5")
    check(c.reply(), 354)
    wire, lines = message("pipelined", ["line %d" % i for i in range(50)])
    c.send(wire + b".\r\n")
    check(c.reply(), 250, "2.0.0")
    assert smtpd.wait_blocks(1) == [debug_block(lines)]
    assert smtpd.log_grep(r"event=message .*rcpt=<b1@example\.com>,"
                          r"<b2@example\.com>,<b3@example\.com> nrcpt=3")


def test_ehlo_and_envelope_in_one_write(smtpd):
    cl = smtpd.client()
    cl.send(b"EHLO client.example\r\nMAIL FROM:<a@example.com>\r\n"
            b"RCPT TO:<b@example.com>\r\nDATA\r\n")
    assert cl.reply().lines[-1] == "HELP"
    check(cl.reply(), 250, "2.1.0")
    check(cl.reply(), 250, "2.1.5")
    check(cl.reply(), 354)
    cl.send(b"Subject: x\r\n\r\ny\r\n.\r\nQUIT\r\n")
    check(cl.reply(), 250, "2.0.0")
    check(cl.reply(), 221, "2.0.0")
    assert cl.wait_closed()
    smtpd.wait_blocks(1)


def test_errors_inside_a_pipelined_group(smtpd, c):
    c.send(b"MAIL FROM:<a@example.com>\r\n"
           b"RCPT TO:bad\r\n"
           b"RCPT TO:<@r.example:b@example.com>\r\n"
           b"RCPT TO:<ok@example.com>\r\n"
           b"BOGUS\r\n"
           b"DATA\r\n"
           b"Subject: grp\r\n\r\nbody\r\n.\r\n")
    check(c.reply(), 250, "2.1.0")
    check(c.reply(), 501, "5.5.4")
    check(c.reply(), 553, "5.1.3")
    check(c.reply(), 250, "2.1.5")
    check(c.reply(), 500, "5.5.2")
    check(c.reply(), 354)
    check(c.reply(), 250, "2.0.0")
    assert smtpd.wait_blocks(1) == [debug_block(["Subject: grp", "",
                                                 "body"])]
    assert smtpd.log_grep(r"event=message .*rcpt=<ok@example\.com> nrcpt=1")


def test_data_refused_in_group_body_is_commands(c):
    """DATA refused (no valid RCPT): what follows is read as commands."""
    c.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<>\r\nDATA\r\n"
           b"NOOP\r\nRSET\r\n")
    check(c.reply(), 250, "2.1.0")
    check(c.reply(), 553, "5.1.3")
    check(c.reply(), 503, "5.5.1")
    check(c.reply(), 250, "2.0.0")
    check(c.reply(), 250, "2.0.0")


def test_many_messages_in_one_write(smtpd, c):
    n = 30
    data = b""
    expected = []
    for i in range(n):
        wire, lines = message("batch %d" % i, ["body of %d" % i, ".dot"])
        wire = wire.replace(b"\r\n.dot", b"\r\n..dot")
        data += (b"MAIL FROM:<a%d@example.com>\r\n"
                 b"RCPT TO:<b%d@example.com>\r\n"
                 b"DATA\r\n" % (i, i)) + wire + b".\r\n"
        expected.append(debug_block(lines))
    data += b"QUIT\r\n"
    c.send(data)
    ids = []
    for i in range(n):
        check(c.reply(), 250, "2.1.0")
        check(c.reply(), 250, "2.1.5")
        check(c.reply(), 354)
        r = check(c.reply(), 250, "2.0.0")
        ids.append(r.message)
    check(c.reply(), 221, "2.0.0")
    assert c.wait_closed()
    assert len(set(ids)) == n
    # In order, each one intact.
    assert smtpd.wait_blocks(n) == expected


def test_200_noops_in_one_write(c):
    c.send(b"NOOP\r\n" * 200)
    replies = c.replies(200)
    assert [r.raw for r in replies] == [b"250 2.0.0 Ok\r\n"] * 200
    c.expect("HELP", 214, "2.0.0")


def test_mixed_commands_answered_in_order(c):
    """Distinct replies prove the order: NOOP, VRFY, HELP, RSET, and an
    error every tenth command (19 in all stays below the limit)."""
    ok = [(b"NOOP", 250, "2.0.0"), (b"VRFY x", 252, "2.0.0"),
          (b"HELP", 214, "2.0.0"), (b"RSET", 250, "2.0.0"),
          (b"VRFY y", 252, "2.0.0"), (b"HELP x", 214, "2.0.0"),
          (b"NOOP x", 250, "2.0.0")]
    bad = [(b"BOGUS", 500, "5.5.2"), (b"STARTTLS", 502, "5.5.1"),
           (b"DATA", 503, "5.5.1")]
    seq = []
    for i in range(190):
        seq.append(bad[i // 10 % 3] if i % 10 == 9 else ok[i % 7])
    assert sum(1 for x in seq if x[1] >= 500) == 19
    c.send(b"".join(x[0] + b"\r\n" for x in seq))
    for i, (line, code, enh) in enumerate(seq):
        check(c.reply(), code, enh, what=(i, line))
    c.expect("NOOP", 250, "2.0.0")


def test_large_pipeline_without_reading(smtpd):
    """400000 NOOPs written before a single reply is read, through a small
    receive window: more replies than the kernel buffers hold, so the
    server has to stop reading and wait.  It neither drops a reply nor
    closes; every reply arrives, in order."""
    c = smtpd.client(rcvbuf=4096)
    c.ehlo()
    n = 400000
    data = b"NOOP\r\n" * n
    want = b"250 2.0.0 Ok\r\n" * n
    sock = c.sock
    deadline = time.monotonic() + scaled(60)
    sent = 0
    # Write only, until everything is written or the writes stall.
    for _ in range(10 ** 6):
        if sent == len(data):
            break
        assert time.monotonic() < deadline, "writing took too long"
        _, w, _ = select.select([], [sock], [], 0.5)
        if not w:
            break           # the server stopped reading: it waits for us
        try:
            sent += sock.send(data[sent:sent + 65536])
        except BlockingIOError:
            pass
    # Then read everything, writing the rest as the server takes it.
    got = bytearray()
    for _ in range(10 ** 7):
        if len(got) >= len(want):
            break
        assert time.monotonic() < deadline, \
            "got %d of %d reply bytes" % (len(got), len(want))
        wl = [sock] if sent < len(data) else []
        r, w, _ = select.select([sock], wl, [], 1.0)
        if r:
            chunk = sock.recv(1 << 20)
            assert chunk, "server closed after %d reply bytes" % len(got)
            got += chunk
        if w:
            try:
                sent += sock.send(data[sent:sent + 65536])
            except BlockingIOError:
                pass
    assert sent == len(data)
    assert len(got) == len(want)
    assert bytes(got) == want
    c.expect("HELP", 214, "2.0.0")


def test_pipelined_quit_mid_stream(smtpd, c):
    """Commands after QUIT are never answered."""
    c.send(b"NOOP\r\nQUIT\r\nNOOP\r\nMAIL FROM:<a@example.com>\r\n")
    check(c.reply(), 250, "2.0.0")
    check(c.reply(), 221, "2.0.0")
    assert c.wait_closed()


def test_pipelined_sessions_in_parallel(smtpd):
    """Ten sessions each pipelining five messages at the same time."""
    sessions = []
    for k in range(10):
        cl = smtpd.client()
        cl.ehlo()
        sessions.append(cl)
    for k, cl in enumerate(sessions):
        data = b""
        for i in range(5):
            wire, _ = message("s%d m%d" % (k, i))
            data += (b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>"
                     b"\r\nDATA\r\n") + wire + b".\r\n"
        cl.send(data)
    for cl in sessions:
        for i in range(5):
            check(cl.reply(), 250, "2.1.0")
            check(cl.reply(), 250, "2.1.5")
            check(cl.reply(), 354)
            check(cl.reply(), 250, "2.0.0")
    blocks = smtpd.wait_blocks(50)
    assert len(blocks) == 50
    for k in range(10):
        mine = [b for b in blocks if "Subject: s%d m" % k in b]
        assert mine == [debug_block(message("s%d m%d" % (k, i))[1])
                        for i in range(5)]
    wait_for(lambda: len(smtpd.log_grep(r"result=printed")) == 50,
             scaled(5), "50 deliveries logged")


@pytest.mark.parametrize("cmd,count", [(b"EHLO x", 500),
                                       (b"VRFY x", 500),
                                       (b"HELP", 600)])
def test_replies_larger_than_commands(smtpd, cmd, count):
    """Short commands with long replies, all in one write that fits one
    4 KiB read: their replies are more than the server queues before it
    pauses.  Once those are written it must go on with the input it
    holds; the client has sent everything and only waits."""
    c = smtpd.client()
    c.send((cmd + b"\r\n") * count)
    first = c.reply()
    replies = [first] + c.replies(count - 1, timeout=scaled(10))
    assert len(replies) == count
    assert all(r.raw == first.raw for r in replies)
    c.expect("NOOP", 250, "any")


def unsent(sock):
    """Bytes the kernel still has to send on sock (SIOCOUTQ)."""
    return struct.unpack("i", fcntl.ioctl(sock, termios.TIOCOUTQ,
                                          b"\0" * 4))[0]


def test_half_close_after_pipeline(smtpd_factory):
    """A client that writes ten messages and QUIT, then shuts down its
    sending side (printf ... | nc -N), gets every reply: the end of its
    input is not the end of what it asked for.  The worker is stopped
    while the client writes, so that it finds the commands and the end
    of the input together, whatever the scheduling."""
    d = smtpd_factory(workers=1)
    (worker,) = d.wait_workers(1)
    n = 10
    c = d.client()
    data = b"EHLO client.example\r\n"
    expected = []
    for i in range(n):
        wire, lines = message("half-close %d" % i)
        data += (b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
                 b"DATA\r\n") + wire + b".\r\n"
        expected.append(debug_block(lines))
    data += b"QUIT\r\n"
    assert len(data) < 4096      # one read takes it all
    try:
        sigstop(worker)
        c.send(data)
        c.sock.shutdown(socket.SHUT_WR)
        wait_for(lambda: unsent(c.sock) == 0, scaled(5),
                 "the kernel to send everything")
    finally:
        os.kill(worker, signal.SIGCONT)
    assert c.reply().lines[-1] == "HELP"
    for i in range(n):
        check(c.reply(), 250, "2.1.0", what=i)
        check(c.reply(), 250, "2.1.5", what=i)
        check(c.reply(), 354, what=i)
        check(c.reply(), 250, "2.0.0", what=i)
    check(c.reply(), 221, "2.0.0")
    assert c.wait_closed()
    assert d.wait_blocks(n) == expected

"""Limits found in review: the largest envelope the limits allow goes
through, and a client that never reads its replies is closed by the
idle timeout all the same."""
import os
from harness import scaled, wait_for


def conf(tmp_path, text):
    path = os.path.join(str(tmp_path), "smtpd.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


def long_address(i):
    local = ("r%03d" % i) + "x" * 60             # 64 octets
    domain = ".".join(["d" * 60] * 3) + ".exampl"  # 189 octets
    return "%s@%s" % (local, domain)


def test_hundred_longest_recipients(smtpd):
    """100 recipients (the default limit) of 256-octet paths: the commit
    to the relay fits, the message is accepted, the worker lives."""
    d = smtpd
    workers = d.wait_workers(len(d.sessions()))
    c = d.client()
    c.expect("EHLO client.example", 250, None)
    c.expect("MAIL FROM:<a@example.com>", 250, "2.1.0")
    for i in range(100):
        path = "<%s>" % long_address(i)
        assert len(path) == 256, len(path)
        c.expect("RCPT TO:%s" % path, 250, "2.1.5")
    c.expect("DATA", 354, None)
    r = c.cmd("Subject: many\r\n\r\nbody\r\n.")
    assert r.code == 250 and r.enh == "2.0.0", r.raw
    c.expect("QUIT", 221, "2.0.0")
    wait_for(lambda: b"Subject: many\n" in d.stdout_bytes(), scaled(5),
             "the message")
    assert sorted(d.sessions()) == sorted(workers)
    assert not d.log_grep(r"worker-violation|event=kill")


def test_timeout_closes_a_client_that_never_reads(smtpd_factory, tmp_path):
    """A client that pipelines and never reads is closed by the idle
    timeout.  (Whether the 421 itself can be written depends on the
    kernel's buffers; the close must come either way.)"""
    path = conf(tmp_path, "timeout 2s\n")
    d = smtpd_factory("-f", path, workers=1)
    c = d.client(rcvbuf=4096)
    # Far more replies than the socket buffers hold; never read them.
    c.sock.setblocking(False)
    burst = b"NOOP\r\n" * 20000
    sent = 0
    for _ in range(200):
        try:
            sent += c.sock.send(burst[sent:])
        except BlockingIOError:
            break
        if sent >= len(burst):
            break
    wait_for(lambda: d.log_grep(r"reason=timeout"), scaled(10),
             "the session closed by the idle timeout", interval=0.1)


def test_deliver_refuses_comma_in_recipient(smtpd_factory, tmp_path):
    """SMTPD_RCPT_TO is comma-separated: in deliver mode a recipient with
    a comma (a quoted local part) would read as two."""
    queue = os.path.join(str(tmp_path), "queue")
    path = conf(tmp_path, "queue %s\nmode deliver\ndeliver \"/bin/true\"\n"
                % queue)
    d = smtpd_factory("-f", path)
    c = d.client()
    c.expect("EHLO client.example", 250, None)
    c.expect("MAIL FROM:<a@example.com>", 250, "2.1.0")
    c.expect('RCPT TO:<"x,admin@corp.example,"@example.net>', 553, "5.1.3")
    c.expect('RCPT TO:<"x y"@example.net>', 250, "2.1.5")
    c.expect("QUIT", 221, "2.0.0")

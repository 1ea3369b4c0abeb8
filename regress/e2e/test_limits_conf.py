"""Limits that only the configuration file sets (SPEC sections 4 and 8):
idle time-out, sessions per worker, recipients, the host name.  Each
test first checks that smtpd -t takes its file: a keyword the parser
rejects is a failure (a parser regression), never a skip."""
import os
import subprocess
import time

import pytest

from harness import SMTPD_BIN, Client, check, scaled


def conf(tmp_path, text):
    path = os.path.join(str(tmp_path), "smtpd.conf")
    with open(path, "w") as f:
        f.write(text)
    p = subprocess.run([SMTPD_BIN, "-n", "-t", "-f", path],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=scaled(10))
    assert p.returncode == 0, "smtpd -t rejects %r: %s" % (
        text, (p.stdout + p.stderr).decode().strip())
    return path


def test_idle_timeout(smtpd_factory, tmp_path):
    path = conf(tmp_path, "timeout 1s\n")
    d = smtpd_factory("-f", path)
    c = d.client()
    c.ehlo()
    t0 = time.monotonic()
    r = c.reply(timeout=scaled(5))
    elapsed = time.monotonic() - t0
    check(r, 421, "4.4.2")
    assert r.message.startswith(d.hostname + " "), r.raw
    assert c.wait_closed()
    assert 0.8 <= elapsed <= scaled(3), elapsed
    assert d.log_grep(r"event=timeout ")


def test_idle_timeout_restarts_on_input(smtpd_factory, tmp_path):
    path = conf(tmp_path, "timeout 1s\n")
    d = smtpd_factory("-f", path)
    c = d.client()
    c.ehlo()
    t0 = time.monotonic()
    # Commands every 0.3 s for 2 s: never idle for a whole second.
    for _ in range(7):
        c.expect("NOOP", 250, "2.0.0")
        time.sleep(0.3)     # the client's pace, not a wait for the server
    assert time.monotonic() - t0 > 2
    c.expect("NOOP", 250, "2.0.0")
    check(c.reply(timeout=scaled(5)), 421, "4.4.2")


def test_idle_timeout_in_data(smtpd_factory, tmp_path):
    path = conf(tmp_path, "timeout 1s\n")
    d = smtpd_factory("-f", path)
    c = d.client()
    c.ehlo()
    c.expect("MAIL FROM:<a@example.com>", 250, "2.1.0")
    c.expect("RCPT TO:<b@example.com>", 250, "2.1.5")
    c.expect("DATA", 354)
    c.send(b"Subject: stalled\r\n\r\nhalf a mess")
    check(c.reply(timeout=scaled(5)), 421, "4.4.2")
    assert c.wait_closed()
    # The half message was dropped, not delivered.
    c2 = d.client()
    c2.ehlo()
    c2.send_message(b"Subject: next\r\n\r\nx\r\n")
    blocks = d.wait_blocks(1)
    assert len(blocks) == 1 and "Subject: next" in blocks[0]


def test_max_sessions(smtpd_factory, tmp_path):
    path = conf(tmp_path, "max-sessions 3\n")
    d = smtpd_factory("-f", path, workers=1)
    held = [d.client() for _ in range(3)]
    extra = Client(d.port)
    d.clients.append(extra)
    r = extra.reply()
    assert r.code == 421 and r.enh == "4.3.2", r.raw
    assert extra.wait_closed()
    assert d.log_grep(r"event=refused .*reason=max-sessions")
    # One leaves: there is room again.
    held[0].expect("QUIT", 221, None)
    assert held[0].wait_closed()
    for _ in range(100):
        c = Client(d.port)
        d.clients.append(c)
        r = c.reply()
        if r.code == 220:
            break
        # The worker may not have seen the QUIT's close yet.
        assert r.code == 421, r.raw
        time.sleep(0.01)    # a client's retry interval, not a wait
    assert r.code == 220, r.raw
    for h in held[1:]:
        h.expect("NOOP", 250, None)


def test_max_recipients(smtpd_factory, tmp_path):
    path = conf(tmp_path, "max-recipients 5\n")
    d = smtpd_factory("-f", path)
    c = d.client()
    c.ehlo()
    c.expect("MAIL FROM:<a@example.com>", 250, "2.1.0")
    for i in range(5):
        c.expect("RCPT TO:<r%d@example.com>" % i, 250, "2.1.5")
    c.expect("RCPT TO:<r5@example.com>", 452, "4.5.3")
    c.expect("DATA", 354)
    c.send(b"Subject: five\r\n\r\nx\r\n.\r\n")
    check(c.reply(), 250, "2.0.0")
    d.wait_blocks(1)
    assert d.log_grep(r"event=message .* nrcpt=5")


def test_hostname(smtpd_factory, tmp_path):
    path = conf(tmp_path, "hostname mx.test.example\n")
    d = smtpd_factory("-f", path, hostname="mx.test.example")
    c = d.client(greet=False)
    assert c.reply().raw == b"220 mx.test.example ESMTP smtpd\r\n"
    assert c.cmd("EHLO client.example").lines[0] == "mx.test.example"
    c.expect("HELO client.example", 250, None, "mx.test.example")


def test_max_message_size(smtpd_factory, tmp_path):
    path = conf(tmp_path, "max-message-size 2K\n")
    d = smtpd_factory("-f", path)
    c = d.client()
    assert "SIZE 2048" in c.cmd("EHLO client.example").lines
    c.expect("MAIL FROM:<a@example.com> SIZE=2049", 552, "5.3.4")


def test_command_line_overrides_file(smtpd_factory, tmp_path):
    path = conf(tmp_path, "max-message-size 2K\n")
    d = smtpd_factory("-f", path, "-s", "3K")
    c = d.client()
    assert "SIZE 3072" in c.cmd("EHLO client.example").lines

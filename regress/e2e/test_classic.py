"""debug mode against the classic smtplib client of the Python
documentation: the output is byte-identical to Python's DebuggingServer
(SPEC section 5), also with many clients at once."""
import email.utils
import os
import smtplib
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from email.mime.text import MIMEText

import pytest

from harness import EXAMPLES, HOSTNAME, scaled, split_blocks

SEND_CLASSIC = os.path.join(EXAMPLES, "send_classic.py")
EXPECTED_PATH = os.path.join(EXAMPLES, "debug_expected.txt")


def expected():
    with open(EXPECTED_PATH, "rb") as f:
        return f.read()


def classic_message():
    """The message send_classic.py builds."""
    msg = MIMEText("This is the body of the message.")
    msg["To"] = email.utils.formataddr(("Recipient",
                                        "recipient@example.com"))
    msg["From"] = email.utils.formataddr(("Author", "author@example.com"))
    msg["Subject"] = "Simple test message"
    return msg.as_string()


def run_send_classic(port):
    return subprocess.run([sys.executable, SEND_CLASSIC, "127.0.0.1",
                           str(port)], stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=scaled(30))


@pytest.mark.parametrize("mode", ["DebuggingServer", "debug"])
def test_send_classic_byte_identical(smtpd_factory, mode):
    d = smtpd_factory("-c", mode)
    p = run_send_classic(d.port)
    assert p.returncode == 0, p.stderr.decode()
    # The dialogue smtplib printed: our EHLO name and the queue id.
    dialogue = p.stderr.decode()
    assert ("reply: b'250-%s\\r\\n'" % HOSTNAME) in dialogue
    assert "reply: retcode (250); Msg: b'2.0.0 Ok: queued as " in dialogue
    d.wait_blocks(1)
    assert d.stdout_bytes() == expected()
    assert d.stop() == 0
    # Nothing is printed after the stop either.
    assert d.stdout_bytes() == expected()


def test_classic_logs_the_envelope(smtpd):
    p = run_send_classic(smtpd.port)
    assert p.returncode == 0, p.stderr.decode()
    smtpd.wait_blocks(1)
    msgs = smtpd.log_grep(r"event=message queue_id=([0-9A-Fa-f]{16}) .*"
                          r"from=<author@example\.com> "
                          r"rcpt=<recipient@example\.com>")
    assert len(msgs) == 1
    qid = msgs[0].group(1)
    assert len(smtpd.log_grep(r"event=delivery queue_id=%s .*"
                              r"result=printed" % qid)) == 1
    # The body never reaches the log (SPEC section 9).
    assert "This is the body of the message." not in smtpd.stderr()


def test_smtplib_sendmail_then_second_message(smtpd):
    """Two messages on one smtplib connection: two identical blocks."""
    with smtplib.SMTP("127.0.0.1", smtpd.port, timeout=scaled(10)) as s:
        for _ in range(2):
            assert s.sendmail("author@example.com",
                              ["recipient@example.com"],
                              classic_message()) == {}
    smtpd.wait_blocks(2)
    assert smtpd.stdout_bytes() == expected() * 2


def test_50_concurrent_classic_clients(smtpd):
    n = 50
    barrier = threading.Barrier(n, timeout=scaled(30))
    text = classic_message()

    def one(i):
        with smtplib.SMTP("127.0.0.1", smtpd.port,
                          timeout=scaled(30)) as s:
            s.ehlo()
            barrier.wait()      # all sessions open, then all send at once
            refused = s.sendmail("author@example.com",
                                 ["recipient@example.com"], text)
            return refused, s.noop()[0]

    with ThreadPoolExecutor(max_workers=n) as ex:
        results = list(ex.map(one, range(n), timeout=scaled(60)))
    assert results == [({}, 250)] * n
    blocks = smtpd.wait_blocks(n)
    assert len(blocks) == n
    exp = expected().decode()
    for b in blocks:
        assert b == exp
    # No interleaving anywhere: the whole output is n blocks end to end.
    assert smtpd.stdout_bytes() == expected() * n
    assert len(split_blocks(smtpd.stdout())) == n

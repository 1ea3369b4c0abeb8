"""SMTP smuggling (SPEC section 8): only CRLF.CRLF ends message data.
A bare LF or CR in the data never ends a line, so no "." after one ends
the message, no command after it is run, and the message is refused with
550 5.5.2 once a real CRLF.CRLF arrives."""
import pytest

from harness import check, debug_block, message

INJECTED = (b"MAIL FROM:<evil@example.com>\r\n"
            b"RCPT TO:<victim@example.com>\r\n"
            b"DATA\r\n"
            b"Subject: smuggled\r\n"
            b"\r\n"
            b"evil\r\n")

VARIANTS = {
    "LF.LF": b"\n.\n",
    "CR.CR": b"\r.\r",
    "LF.CRLF": b"\n.\r\n",
    "CRLF.LF": b"\r\n.\n",
    "CR.CRLF": b"\r.\r\n",
    "CRLF.CR": b"\r\n.\r",
    "LF.": b"\n.",
    "CR.": b"\r.",
    "LF": b"\n",
    "CR": b"\r",
    "LFLF.LFLF": b"\n\n.\n\n",
    "CRLF.LFCRLF": b"\r\n.\n\r\n",
}


@pytest.fixture
def c(smtpd):
    cl = smtpd.client()
    cl.ehlo()
    return cl


def open_data(c):
    c.expect("MAIL FROM:<a@example.com>", 250, "2.1.0")
    c.expect("RCPT TO:<b@example.com>", 250, "2.1.5")
    c.expect("DATA", 354)


def legit_message(smtpd, c):
    """One good message; once it is printed, nothing else may be."""
    wire, lines = message("legit")
    c.send_message(wire)
    blocks = smtpd.wait_blocks(1)
    assert blocks == [debug_block(lines)]
    assert "evil" not in smtpd.stdout()
    assert "victim@example.com" not in smtpd.stderr()


@pytest.mark.parametrize("variant", list(VARIANTS.values()),
                         ids=list(VARIANTS.keys()))
def test_smuggling_variant(smtpd, c, variant):
    open_data(c)
    c.send(b"Subject: smuggle\r\n\r\nhello" + variant + INJECTED + b".\r\n")
    # One reply for the whole thing: the refusal after the real end.
    check(c.reply(), 550, "5.5.2")
    # Nothing was run from inside the data: the next reply is HELP's.
    c.expect("HELP", 214, "2.0.0")
    c.expect("DATA", 503, "5.5.1")
    legit_message(smtpd, c)
    assert len(smtpd.log_grep(r"event=message ")) == 1


@pytest.mark.parametrize("variant", list(VARIANTS.values()),
                         ids=list(VARIANTS.keys()))
def test_smuggling_variant_in_pieces(smtpd, c, variant):
    """The same, written in several pieces split around the variant."""
    open_data(c)
    c.send(b"Subject: smuggle\r\n\r\nhello")
    for i in range(len(variant)):
        c.send(variant[i:i + 1])
    c.send(INJECTED[:20])
    c.send(INJECTED[20:] + b".")
    c.send(b"\r")
    c.send(b"\n")
    check(c.reply(), 550, "5.5.2")
    c.expect("HELP", 214, "2.0.0")
    legit_message(smtpd, c)


def test_bare_lf_in_data(smtpd, c):
    open_data(c)
    c.send(b"Subject: x\r\n\r\nline one\nline two\r\n.\r\n")
    check(c.reply(), 550, "5.5.2")
    legit_message(smtpd, c)


def test_bare_cr_in_data(smtpd, c):
    open_data(c)
    c.send(b"Subject: x\r\n\r\nline one\rline two\r\n.\r\n")
    check(c.reply(), 550, "5.5.2")
    legit_message(smtpd, c)


def test_bare_lf_in_headers(smtpd, c):
    open_data(c)
    c.send(b"Subject: x\nX-Injected: y\r\n\r\nbody\r\n.\r\n")
    check(c.reply(), 550, "5.5.2")
    legit_message(smtpd, c)


def test_unix_line_ends_only(smtpd, c):
    """A client that sends LF only never ends its data with "\\n.\\n"."""
    open_data(c)
    c.send(b"Subject: unix\n\nbody\n.\n")
    c.send(INJECTED)
    c.send(b"\r\n.\r\n")
    check(c.reply(), 550, "5.5.2")
    c.expect("HELP", 214, "2.0.0")
    legit_message(smtpd, c)


def test_crlf_dot_crlf_split_over_writes_ends_data(smtpd, c):
    """A real CRLF.CRLF ends the data however it is split."""
    open_data(c)
    for piece in (b"Subject: split\r\n\r\nbody", b"\r", b"\n", b".",
                  b"\r", b"\n"):
        c.send(piece)
    check(c.reply(), 250, "2.0.0")
    assert smtpd.wait_blocks(1) == [debug_block(["Subject: split", "",
                                                 "body"])]


def test_dot_after_bare_lf_not_unstuffed_into_end(smtpd, c):
    """"x\\n..\\r\\n" then the end: still one refused message."""
    open_data(c)
    c.send(b"Subject: x\r\n\r\nx\n..\r\n" + INJECTED + b".\r\n")
    check(c.reply(), 550, "5.5.2")
    c.expect("HELP", 214, "2.0.0")
    legit_message(smtpd, c)


def test_refused_message_then_pipelined_good_one(smtpd, c):
    """After a refused message, a pipelined good one is accepted."""
    wire, lines = message("after")
    open_data(c)
    c.send(b"Subject: bad\r\n\r\nx\n.\r\n.\r\n"
           b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
           b"DATA\r\n" + wire + b".\r\n")
    check(c.reply(), 550, "5.5.2")
    check(c.reply(), 250, "2.1.0")
    check(c.reply(), 250, "2.1.5")
    check(c.reply(), 354)
    check(c.reply(), 250, "2.0.0")
    assert smtpd.wait_blocks(1) == [debug_block(lines)]

"""debug mode against Python 3.11's own smtpd.DebuggingServer, run live:
the same raw SMTP sessions go to both, and what each prints on standard
output must be the same bytes (SPEC section 5), in both flavours:
debug-format text against decode_data=True, debug-format bytes against
decode_data=False (what `python3.11 -m smtpd -n -c DebuggingServer`
ran).  Where Python gave up (an empty message, on which it hung; data
that is not UTF-8 in text mode, which killed its session) smtpd's output
is compared with the block written here."""
import os
import signal
import socket
import subprocess
import time

import pytest

from harness import SMTPD_BIN, free_port, scaled, wait_for
from skips import missing

PYTHON311 = "/usr/bin/python3.11"
HEAD = b"---------- MESSAGE FOLLOWS ----------\n"
TAIL = b"------------ END MESSAGE ------------\n"
SERVER = """
import asyncore, smtpd, sys
smtpd.DebuggingServer(("127.0.0.1", %d), None, decode_data=%s,
                      enable_SMTPUTF8=%s)
print("listening", file=sys.stderr, flush=True)
asyncore.loop()
"""


def python_has_smtpd():
    if not os.access(PYTHON311, os.X_OK):
        return False
    p = subprocess.run([PYTHON311, "-W", "ignore", "-c", "import smtpd"],
                       capture_output=True, timeout=scaled(30))
    return p.returncode == 0


@pytest.fixture(scope="module", autouse=True)
def need_python311():
    if python_has_smtpd():
        return
    missing("no %s with the smtpd module (Debian 12's python3.11)"
            % PYTHON311)


class PythonServer:
    """Python 3.11's DebuggingServer on a port chosen at run time."""

    def __init__(self, workdir, decode_data):
        self.port = free_port()
        self.out_path = os.path.join(workdir, "python-%s.out" % decode_data)
        self.err_path = os.path.join(workdir, "python-%s.err" % decode_data)
        self.out = open(self.out_path, "wb")
        self.err = open(self.err_path, "wb")
        code = SERVER % (self.port, decode_data, not decode_data)
        env = dict(os.environ, PYTHONIOENCODING="utf-8",
                   PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [PYTHON311, "-u", "-W", "ignore", "-c", code],
            stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err,
            env=env, start_new_session=True, cwd=workdir)
        wait_for(self.listening, scaled(20), "Python's DebuggingServer")

    def listening(self):
        assert self.proc.poll() is None, "python exited: %s" % self.stderr()
        return b"listening" in self.stderr_bytes()

    def stderr_bytes(self):
        with open(self.err_path, "rb") as f:
            return f.read()

    def stderr(self):
        return self.stderr_bytes().decode("utf-8", "replace")

    def stdout_bytes(self):
        with open(self.out_path, "rb") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(scaled(10))
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(scaled(10))
        self.out.close()
        self.err.close()


@pytest.fixture
def python_text(tmp_path):
    s = PythonServer(str(tmp_path), True)
    yield s
    s.stop()


@pytest.fixture
def python_bytes(tmp_path):
    s = PythonServer(str(tmp_path), False)
    yield s
    s.stop()


def write_conf(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("".join(l + "\n" for l in lines))
    return str(path)


@pytest.fixture
def smtpd_text(smtpd_factory):
    # The default flavour, asked for without any configuration.
    return smtpd_factory()


@pytest.fixture
def smtpd_bytes(tmp_path, smtpd_factory):
    conf = write_conf(tmp_path, "bytes.conf",
                      ["debug-format bytes", "smtputf8 yes"])
    return smtpd_factory("-f", conf)


# --------------------------------------------------------------------------
# a raw client: the test decides every byte

def read_reply(sock, deadline):
    """One (possibly multi-line) reply; its code."""
    buf = b""
    while True:
        while b"\r\n" not in buf:
            left = deadline - time.monotonic()
            assert left > 0, "no reply (got %r)" % buf
            sock.settimeout(left)
            chunk = sock.recv(4096)
            assert chunk, "connection closed (got %r)" % buf
            buf += chunk
        line, buf = buf.split(b"\r\n", 1)
        if len(line) < 4 or line[3:4] != b"-":
            assert not buf, "more than one reply: %r" % buf
            return int(line[:3])


def run_session(port, steps):
    """steps: command lines (bytes, without CRLF) and ("data", wire)
    where wire is the dot-stuffed message without the final dot line.
    Returns the reply codes."""
    deadline = time.monotonic() + scaled(20)
    codes = []
    with socket.create_connection(("127.0.0.1", port),
                                  timeout=scaled(10)) as s:
        codes.append(read_reply(s, deadline))
        for step in steps:
            if isinstance(step, tuple):
                s.sendall(step[1] + b".\r\n")
            else:
                s.sendall(step + b"\r\n")
            codes.append(read_reply(s, deadline))
    return codes


def transaction(wire, mail=b"MAIL FROM:<author@example.com>",
                rcpts=(b"RCPT TO:<recipient@example.com>",)):
    return [mail] + list(rcpts) + [b"DATA", ("data", wire)]


def session(*transactions, ehlo=b"EHLO client.example"):
    steps = [ehlo]
    for t in transactions:
        steps += t
    return steps + [b"QUIT"]


def wait_messages(server, n):
    def done():
        out = server.stdout_bytes()
        return out.count(TAIL) >= n and out.endswith(TAIL)
    wait_for(done, scaled(20), "%d printed messages" % n)
    return server.stdout_bytes()


def compare(python, daemon, sessions):
    """Run each session against both servers; compare the output."""
    n = 0
    for steps in sessions:
        run_session(python.port, steps)
        run_session(daemon.port, steps)
        n += sum(1 for s in steps if isinstance(s, tuple))
        ours = wait_messages(daemon, n)
        theirs = wait_messages(python, n)
        assert ours == theirs, "session %r" % (steps,)
    assert daemon.stdout_bytes().count(HEAD) == n


def lines(*ls):
    return b"".join(l + b"\r\n" for l in ls)


CLASSIC = lines(b"Content-Type: text/plain; charset=\"us-ascii\"",
                b"MIME-Version: 1.0", b"Content-Transfer-Encoding: 7bit",
                b"To: Recipient <recipient@example.com>",
                b"From: Author <author@example.com>",
                b"Subject: Simple test message", b"",
                b"This is the body of the message.")

# Messages both servers take in both flavours (wire form, dot-stuffed).
MESSAGES = {
    "classic": CLASSIC,
    "no_empty_line": lines(b"Subject: no empty line", b"body"),
    "headers_only": lines(b"Subject: x"),
    "only_an_empty_line": lines(b""),
    "only_empty_lines": lines(b"", b"", b""),
    "empty_lines_at_end": lines(b"Subject: x", b"", b"body", b"", b""),
    "empty_lines_at_start": lines(b"", b"", b"Subject: x", b"", b"body"),
    "empty_line_twice": lines(b"A: b", b"", b"c", b"", b"d"),
    "dot_stuffed": lines(b"Subject: dots", b"", b"..leading dot", b"...",
                         b"..", b".not stuffed", b"a.b", b"end."),
    "dot_in_headers": lines(b"..X: y", b"", b".."),
    "form_feeds": lines(b"Subject: ff", b"", b"page 1\x0cpage 2",
                        b"\x0c", b"\x0c\x0c"),
    "splitlines_breaks": lines(
        b"A: 1\x0bB: 2\x0cC: 3\x1cD: 4\x1dE: 5\x1eF: 6",
        b"G: 7\xc2\x85H: 8\xe2\x80\xa8I: 9\xe2\x80\xa9J: 10",
        b"\x1e", b"body\x1fnot a break\xc2\xa0nor this"),
    "break_ends_headers": lines(b"Subject: x\x0c\x0cbody"),
    "break_at_line_end": lines(b"Subject: x\xe2\x80\xa9", b"", b"y\x0b"),
    "utf8": lines("Subject: café ☃ 𝄞".encode(), b"",
                  "naïve — ünïcödé ∑ 中文".encode()),
    "long_lines": lines(b"X-Long: " + b"h" * 990, b"", b"b" * 998,
                        b"." + b"d" * 997, b"c" * 500),
    "blank_and_tabs": lines(b"Subject:  spaced\t", b" folded", b"",
                            b"\t", b" "),
}


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_text_one_message(python_text, smtpd_text, name):
    compare(python_text, smtpd_text, [session(transaction(MESSAGES[name]))])


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_bytes_one_message(python_bytes, smtpd_bytes, name):
    compare(python_bytes, smtpd_bytes,
            [session(transaction(MESSAGES[name]))])


def test_text_several_messages_per_session(python_text, smtpd_text):
    names = sorted(MESSAGES)
    compare(python_text, smtpd_text,
            [session(*[transaction(MESSAGES[n]) for n in names]),
             session(transaction(MESSAGES["classic"]),
                     ehlo=b"HELO client.example")])


def test_bytes_several_messages_per_session(python_bytes, smtpd_bytes):
    names = sorted(MESSAGES)
    compare(python_bytes, smtpd_bytes,
            [session(*[transaction(MESSAGES[n]) for n in names]),
             session(transaction(MESSAGES["classic"]),
                     ehlo=b"HELO client.example")])


def test_text_size_parameter(python_text, smtpd_text):
    """Text mode prints no options; SIZE is taken by both."""
    compare(python_text, smtpd_text, [session(transaction(
        MESSAGES["classic"],
        mail=b"MAIL FROM:<author@example.com> SIZE=1000"))])


BYTES_ONLY = {
    # Quotes, backslashes and bytes repr() escapes.
    "quotes": lines(b"Subject: it's", b"Q: say \"hi\"", b"R: 'both\"",
                    b"", b"back\\slash\ttab", b"del\x7f high\x80\xff",
                    b"ctl \x01\x1b\x1f", b"'", b"\""),
    # Not UTF-8: bytes mode never decoded the data.
    "latin1": lines(b"Subject: caf\xe9", b"", b"\xff\xfe\x80"),
}


@pytest.mark.parametrize("name", sorted(BYTES_ONLY))
def test_bytes_repr(python_bytes, smtpd_bytes, name):
    compare(python_bytes, smtpd_bytes,
            [session(transaction(BYTES_ONLY[name]))])


def test_bytes_mail_and_rcpt_options(python_bytes, smtpd_bytes):
    """mail options / rcpt options lines: the MAIL's parameters upper
    cased; the last RCPT's, even refused (Python kept them); and none
    printed for a next transaction without any."""
    msg = MESSAGES["classic"]
    compare(python_bytes, smtpd_bytes, [
        session(transaction(
            msg, mail=b"MAIL FROM:<author@example.com> SIZE=100 "
            b"BODY=8BITMIME")),
        session(transaction(
            msg, mail=b"mail FROM:<author@example.com> body=8bitmime "
            b"size=0100  SMTPUTF8")),
        session(transaction(
            msg, mail=b"MAIL FROM:<author@example.com> BODY=7BIT")),
        session(
            transaction(msg, mail=b"MAIL FROM:<a@example.com> SIZE=5",
                        rcpts=(b"RCPT TO:<b@example.com>",
                               b"RCPT TO:<c@example.com> NOTIFY=NEVER",
                               b"RCPT TO:<d@example.com> notify=success "
                               b"orcpt=rfc822;d@example.com")),
            transaction(msg),
            transaction(msg, rcpts=(b"RCPT TO:<b@example.com> X=1",
                                    b"RCPT TO:<c@example.com>"))),
        session(transaction(
            "Subject: ☃\r\n\r\nü\r\n".encode(),
            mail="MAIL FROM:<ünï@example.com> SMTPUTF8".encode(),
            rcpts=("RCPT TO:<jörg@example.com>".encode(),))),
    ])


def test_bytes_options_after_helo(python_bytes, smtpd_bytes):
    compare(python_bytes, smtpd_bytes, [session(
        transaction(MESSAGES["classic"],
                    rcpts=(b"RCPT TO:<b@example.com>",
                           b"RCPT TO:<c@example.com> NOTIFY=NEVER")),
        ehlo=b"HELO client.example")])


# --------------------------------------------------------------------------
# where Python gave up: smtpd's own output

def smtpd_only(daemon, steps):
    codes = run_session(daemon.port, steps)
    return codes, wait_messages(daemon, 1)


def test_text_empty_message(smtpd_text):
    """Python waited forever for "\\r\\n.\\r\\n"; smtpd prints nothing
    between the markers, as for a message of one empty line."""
    codes, out = smtpd_only(smtpd_text, session(transaction(b"")))
    assert codes[-2] == 250
    assert out == HEAD + TAIL


def test_bytes_empty_message(smtpd_bytes):
    codes, out = smtpd_only(smtpd_bytes, session(transaction(
        b"", mail=b"MAIL FROM:<a@example.com> SIZE=0")))
    assert codes[-2] == 250
    assert out == HEAD + b"mail options: ['SIZE=0']\n" + TAIL


def test_text_not_utf8(smtpd_text, python_text):
    """Python's text mode died on this data (its session was closed);
    smtpd prints each line's raw bytes, cut by the same rules."""
    wire = lines(b"Subject: caf\xe9\x0cX: \xc2\x85y", b"", b"\xff\xfe",
                 b"z\xe2\x80\xa8\xe2\x80", b"", b"")
    with pytest.raises(AssertionError):
        run_session(python_text.port, session(transaction(wire)))
    codes, out = smtpd_only(smtpd_text, session(transaction(wire)))
    assert codes[-2] == 250
    assert out == (HEAD + b"Subject: caf\xe9\nX: \ny\nX-Peer: 127.0.0.1\n"
                   b"\n\xff\xfe\nz\n\xe2\x80\n\n" + TAIL)


def test_debug_format_keyword(tmp_path):
    """debug-format takes text or bytes, nothing else."""
    def check(line):
        path = write_conf(tmp_path, "t.conf", [line])
        return subprocess.run([SMTPD_BIN, "-t", "-f", path],
                              capture_output=True, timeout=scaled(10))
    p = check("debug-format repr")
    assert p.returncode == 1
    assert b"debug-format: repr is not text or bytes" in p.stderr
    for v in ("text", "bytes"):
        p = check("debug-format " + v)
        assert p.returncode == 0, p.stderr

"""No client can forge a log field (SPEC 9): every line of a session fed
with hostile values (a HELO, a sender's quoted local part, a recipient,
an AUTH user holding " session=", " queue_id=", '=', quotes, 8-bit and
control bytes) reads back as key=value fields, each key once, with the
session's own id in session=.

Clients: the raw client of harness.py, on loopback; the upstream is the
recording regress/lib/upstream.py.
"""
import base64
import re

from harness import Client, check, free_port, scaled
from relay_harness import (relay_conf, relay_factory,  # noqa: F401
                           upstream_factory, world)

FIELD = re.compile(r' ([a-z_]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)')
LINE = re.compile(r"^smtpd\[\d+\]: \w+: (event=\S+)(.*)$")
FAKE_SID = "0123456789abcdef"
FAKE_QID = "0123456789ABCDEF"


def fields(line):
    """The fields of line, in order, or None if it is not made only of
    key=value pairs (a value quoted if it holds a blank or a quote)."""
    m = LINE.match(line)
    if m is None:
        return None
    out = [tuple(m.group(1).split("=", 1))]
    rest, pos = m.group(2), 0
    while pos < len(rest):
        f = FIELD.match(rest, pos)
        if f is None:
            return None
        out.append((f.group(1), f.group(2)))
        pos = f.end()
    return out


def test_hostile_values_forge_no_field(relay_factory, world,
                                       upstream_factory):
    up = upstream_factory()
    port = free_port()
    conf, _ = relay_conf(world, lines=[
        "listen on 127.0.0.1 port %d" % port, "relay-domains example.net",
        "upstream 127.0.0.1 port %d" % up.port])
    d = relay_factory("-f", conf, "-c", "relay", "-v", listen="",
                      wait=False)
    d.port = port
    d.start()
    forged = " session=%s queue_id=%s client=6.6.6.6" % (FAKE_SID, FAKE_QID)
    c = Client(port)
    check(c.reply(), 220)
    c.send(("EHLO x%s\r\n" % forged).encode())
    c.reply()
    c.send(("HELO x\"%s\r\n" % forged).encode())
    c.reply()
    c.send(b"EHLO [IPv6:::1]\r\n")
    c.reply()
    c.send(b"AUTH PLAIN " + base64.b64encode(
        ("\0u%s\0pw" % forged).encode()) + b"\r\n")
    c.reply()
    c.send(('MAIL FROM:<"a session=%s\\"="@example.com>\r\n' % FAKE_SID).encode())
    check(c.reply(), 250, "any")
    c.send(('RCPT TO:<"r queue_id=%s"@elsewhere.org>\r\n' % FAKE_QID).encode())
    c.reply()
    c.send(('RCPT TO:<"r client=6.6.6.6 q=\\"%s"@example.net>\r\n'
            % FAKE_QID[:8]).encode())
    check(c.reply(), 250, "any")
    c.send(b"DATA\r\n")
    check(c.reply(), 354, "any")
    c.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
    check(c.reply(), 250, "any")
    c.send(b"QUIT\r\n")
    c.reply()
    c.close()
    up.wait_messages(1)
    d.wait_log(r"event=removed ")
    lines = d.log_lines()
    # The hostile values were logged (inside their fields).
    assert [l for l in lines if "event=message " in l and FAKE_SID in l
            and "6.6.6.6" in l], lines
    assert [l for l in lines if "event=rcpt-refused " in l and FAKE_QID in l]
    bad = []
    for line in lines:
        f = fields(line)
        if f is None:
            bad.append(("unparsed", line))
            continue
        keys = [k for k, _ in f]
        if len(keys) != len(set(keys)):
            bad.append(("key twice", line))
        vals = dict(f)
        if vals.get("session") == FAKE_SID or \
                vals.get("queue_id") == FAKE_QID or \
                vals.get("client") == "6.6.6.6":
            bad.append(("forged", line))
    assert bad == [], "\n".join("%s: %s" % b for b in bad)

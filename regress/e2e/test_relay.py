"""relay mode (SPEC section 7): PureProxy's command line forwards the
classic client to the upstream, closed to everyone but loopback by
default; the open-relay guard at RCPT TO; bounces (RFC 3464) for
upstream 5xx, never for a null sender."""
import email
import email.utils
import subprocess
import time

import pytest

from harness import HOSTNAME, check, scaled, wait_for
from skips import ipv6_only
from relay_harness import (PYTHON, SEND_CLASSIC, classic_message,  # noqa
                           make_message, message_id, netns, queue_files,
                           relay_conf, relay_factory, smtp_send,
                           split_received, upstream_factory, with_x_peer,
                           world)

# The fixtures above (netns, relay_factory, upstream_factory, world) are
# imported so that pytest finds them in this module.


def run_send_classic(host, port, ns=None):
    argv = [PYTHON, SEND_CLASSIC, host, str(port)]
    if ns is not None:
        return ns.run(argv)
    return subprocess.run(argv, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=scaled(30))


def logged_helo(d, qid):
    """The EHLO name the client gave for message qid (smtplib's own
    choice: the FQDN, or an address literal), from the daemon's log."""
    m = d.wait_log(r"relay: event=message queue_id=%s client=\S+ "
                   r"helo=(\S+) " % qid)[0]
    return m.group(1)


def check_received(m, helo, ip, qid, rcpt=None, proto=b"ESMTP"):
    assert m.group("helo").decode() == helo
    assert m.group("ip").decode() == ip
    assert m.group("host").decode() == HOSTNAME
    assert m.group("proto") == proto
    assert m.group("qid").decode() == qid
    if rcpt is not None:
        assert m.group("rcpt").decode() == rcpt
    else:
        assert m.group("rcpt") is None
    when = email.utils.parsedate_to_datetime(m.group("date").decode())
    assert abs(when.timestamp() - time.time()) < 120, m.group("date")


def queued_id(stderr):
    marker = "Ok: queued as "
    i = stderr.rfind(marker)
    assert i != -1, stderr
    return stderr[i + len(marker):i + len(marker) + 16]


# --------------------------------------------------------------------------
# PureProxy's command line, the classic client, loopback and not

def test_pureproxy_forwards_the_classic_client(world, upstream_factory,
                                               relay_factory):
    """-c PureProxy LISTEN UPSTREAM with a configuration holding only a
    queue: no relay policy, so loopback may relay.  The upstream gets
    the message byte for byte, with our Received: on top and X-Peer at
    the end of the header block."""
    up = upstream_factory()
    conf, queue = relay_conf(world)
    d = relay_factory("-f", conf, "-c", "PureProxy", second=up.addr)
    p = run_send_classic("127.0.0.1", d.port)
    assert p.returncode == 0, p.stderr.decode()
    qid = queued_id(p.stderr.decode())
    [rec] = up.wait_messages(1)
    assert rec["sender"] == "author@example.com"
    assert rec["rcpts"] == ["recipient@example.com"]
    assert rec["esmtp"] is True
    assert rec["helo"] == HOSTNAME
    received, rest = split_received(rec["data"])
    check_received(received, logged_helo(d, qid), "127.0.0.1", qid,
                   "recipient@example.com")
    assert rest == with_x_peer(classic_message(), "127.0.0.1")
    assert rest.endswith(b"\r\nX-Peer: 127.0.0.1\r\n\r\n"
                         b"This is the body of the message.\r\n")
    d.wait_log(r"relay: event=removed queue_id=%s$" % qid)
    d.wait_log(r"relay: event=queued queue_id=%s$" % qid)
    d.wait_log(r"relay: event=attempt queue_id=%s upstream=127\.0\.0\.1:%d "
               r"rcpt=<recipient@example\.com> result=delivered code=250 "
               % (qid, up.port))
    assert queue_files(queue) == []
    # Exactly one copy.
    assert len(up.messages()) == 1


def test_pureproxy_refuses_a_client_not_on_loopback(world, upstream_factory,
                                                   relay_factory, netns):
    """The same daemon, the same client, from another network namespace
    (a veth pair, 10.254.0.0/16): 550 5.7.1, nothing queued or sent."""
    up = upstream_factory()
    conf, queue = relay_conf(world)
    d = relay_factory("-f", conf, "-c", "PureProxy", second=up.addr,
                      host=netns.host_ip)
    p = run_send_classic(netns.host_ip, d.port, ns=netns)
    err = p.stderr.decode()
    assert p.returncode != 0, err
    assert ("reply: b'550 5.7.1 <recipient@example.com>: Relay access "
            "denied\\r\\n'") in err
    assert "SMTPRecipientsRefused" in err
    d.wait_log(r"session: event=rcpt-refused session=[0-9a-f]{16} client=%s "
               r"from=<\S+> rcpt=<recipient@example\.com> "
               r"reason=relay-denied$"
               % netns.ns_ip.replace(".", r"\."))
    # Once the session is over, anything accepted would be queued already.
    d.wait_log(r"session: event=disconnect session=\S+ client=%s .*"
               r"messages=0$" % netns.ns_ip.replace(".", r"\."))
    assert not d.log_grep(r"event=(message|queued)")
    assert queue_files(queue) == []
    assert up.messages() == []


def test_trusted_network_not_on_loopback_relays(world, upstream_factory,
                                                relay_factory, netns):
    """trusted-networks naming the namespace's /30 lets its client relay;
    X-Peer and Received: carry the client's address."""
    up = upstream_factory()
    net = netns.host_ip.rsplit(".", 1)[0] + ".%d/30" % (
        int(netns.host_ip.rsplit(".", 1)[1]) - 1)
    conf, queue = relay_conf(world, lines=["trusted-networks " + net])
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr,
                      host=netns.host_ip)
    p = run_send_classic(netns.host_ip, d.port, ns=netns)
    assert p.returncode == 0, p.stderr.decode()
    qid = queued_id(p.stderr.decode())
    [rec] = up.wait_messages(1)
    received, rest = split_received(rec["data"])
    check_received(received, logged_helo(d, qid), netns.ns_ip, qid,
                   "recipient@example.com")
    assert rest == with_x_peer(classic_message(), netns.ns_ip)


# --------------------------------------------------------------------------
# the guard at RCPT TO

def rcpt(c, addr, code, enh, text=None):
    return check(c.cmd("RCPT TO:<%s>" % addr), code, enh, text,
                 what="RCPT TO:<%s>" % addr)


DENIED = "<%s>: Relay access denied"


def send_good(c, rcpts, n, sender="sender@example.com"):
    """One message to rcpts on client c; its Message-ID."""
    c.expect("MAIL FROM:<%s>" % sender, 250, "2.1.0")
    for a in rcpts:
        rcpt(c, a, 250, "2.1.5")
    c.expect("DATA", 354)
    data = make_message(n, "guard")
    c.send(data + b".\r\n")
    check(c.reply(), 250, "2.0.0", what="end of data")
    return message_id(data)


def only_message(up, msgid, rcpts):
    """The upstream got the message msgid for rcpts and nothing else."""
    [rec] = up.wait_messages(1)
    _, rest = split_received(rec["data"])
    assert message_id(rest) == msgid
    assert rec["rcpts"] == rcpts
    assert rec["sender"] == "sender@example.com"
    return rec


def test_relay_domains_guard(world, upstream_factory, relay_factory):
    up = upstream_factory()
    conf, queue = relay_conf(world, lines=["relay-domains example.net"])
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    c = d.client()
    c.ehlo()
    c.expect("MAIL FROM:<sender@example.com>", 250, "2.1.0")
    # Loopback is not trusted once a policy is configured.
    for a in ("a@example.org", "a@sub.example.net", "a@notexample.net",
              "a@example.net.org", "a@example.netx", "a@[127.0.0.1]"):
        rcpt(c, a, 550, "5.7.1", DENIED % a)
    rcpt(c, "a@example.org.", 550, "5.7.1")
    # Routing tricks: never relayed, whatever the domain.
    for a in ("a%example.org@example.net", "a!b@example.net",
              '"a@b"@example.net', "a%b@example.org", "b!a@example.org"):
        r = rcpt(c, a, 553, "5.1.3")
        assert ("<%s>" % a) in r.message, r.raw
    rcpt(c, "@example.net:a@example.org", 553, "5.1.3")
    rcpt(c, "@x.example,@example.net:a@example.net", 553, "5.1.3")
    r = c.cmd("RCPT TO:<a@example.org@example.net>")
    check(r, 501, "any")
    # Nothing was accepted: DATA is out of order.
    r = c.cmd("DATA")
    assert r.code in (503, 554), r.raw
    c.expect("RSET", 250, "2.0.0")
    # Case-insensitive, a trailing dot ignored.
    good = ["a@example.net", "b@EXAMPLE.NET", "c@Example.Net.",
            "d@example.net."]
    msgid = send_good(c, good, 1)
    c.expect("QUIT", 221, "2.0.0")
    rec = only_message(up, msgid, ["a@example.net", "b@EXAMPLE.NET",
                                   "c@Example.Net", "d@example.net"])
    d.wait_log(r"relay: event=removed ")
    # Still the only one once the queue is empty.
    assert len(up.messages()) == 1, [m["rcpts"] for m in up.messages()]
    assert queue_files(queue) == []
    assert rec["data"].count(b"Message-ID:") == 1


def test_relay_domains_list_and_trailing_dot_in_config(
        world, upstream_factory, relay_factory):
    """Several domains, commas, a configured trailing dot and capitals."""
    up = upstream_factory()
    conf, _ = relay_conf(world, lines=["relay-domains one.example, "
                                       "TWO.example.",
                                       "relay-domains three.example"])
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    c = d.client()
    c.ehlo()
    c.expect("MAIL FROM:<sender@example.com>", 250, "2.1.0")
    for a in ("x@four.example", "x@sub.one.example", "x@example",
              "x@two.example.com"):
        rcpt(c, a, 550, "5.7.1", DENIED % a)
    c.expect("RSET", 250, "2.0.0")
    msgid = send_good(c, ["x@one.example", "x@two.example",
                          "x@Three.Example."], 2)
    only_message(up, msgid, ["x@one.example", "x@two.example",
                             "x@Three.Example"])


def test_relay_recipients_file(world, upstream_factory, relay_factory):
    up = upstream_factory()
    rfile = world.file("recipients", "# who we relay for\n"
                       "user@example.org\n"
                       "\n"
                       "@Example.COM\n"
                       "  other@example.net.   # trailing dot\n")
    conf, _ = relay_conf(world, lines=["relay-recipients " + rfile])
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    c = d.client()
    c.ehlo()
    c.expect("MAIL FROM:<sender@example.com>", 250, "2.1.0")
    for a in ("someone@example.org", "user@sub.example.org",
              "user@example.org.invalid", "x@sub.example.com",
              "x@example.com.au", "user@example.net", "x@example.net"):
        rcpt(c, a, 550, "5.7.1", DENIED % a)
    for a in ("user%x@example.com", '"x@y"@example.com', "x!y@example.com"):
        rcpt(c, a, 553, "5.1.3")
    c.expect("RSET", 250, "2.0.0")
    good = ["user@example.org", "user@EXAMPLE.ORG.", "anyone@example.com",
            "else@EXAMPLE.com", "other@example.net"]
    msgid = send_good(c, good, 3)
    only_message(up, msgid, ["user@example.org", "user@EXAMPLE.ORG",
                             "anyone@example.com", "else@EXAMPLE.com",
                             "other@example.net"])


def test_trusted_networks_loopback(world, upstream_factory, relay_factory):
    """127.0.0.0/8 trusted: loopback relays anywhere, still never %, !
    or a quoted @."""
    up = upstream_factory()
    conf, _ = relay_conf(world, lines=["trusted-networks 10.0.0.0/8, "
                                       "127.0.0.0/8, ::1"])
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    c = d.client()
    c.ehlo()
    c.expect("MAIL FROM:<sender@example.com>", 250, "2.1.0")
    for a in ("a%b@example.org", "a!b@example.org", '"a@b"@example.org'):
        rcpt(c, a, 553, "5.1.3")
    rcpt(c, "@example.net:a@example.org", 553, "5.1.3")
    c.expect("RSET", 250, "2.0.0")
    msgid = send_good(c, ["a@example.org", "b@elsewhere.example"], 4)
    only_message(up, msgid, ["a@example.org", "b@elsewhere.example"])


def test_trusted_networks_without_loopback(world, upstream_factory,
                                           relay_factory):
    """trusted-networks that do not hold 127.0.0.1: loopback is not
    trusted any more (nothing is implied once a policy exists)."""
    up = upstream_factory()
    conf, _ = relay_conf(world, lines=["trusted-networks 10.0.0.0/8, "
                                       "127.0.0.2/32, ::1",
                                       "relay-domains example.net"])
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    c = d.client()
    c.ehlo()
    c.expect("MAIL FROM:<sender@example.com>", 250, "2.1.0")
    rcpt(c, "a@example.org", 550, "5.7.1", DENIED % "a@example.org")
    c.expect("RSET", 250, "2.0.0")
    msgid = send_good(c, ["a@example.net"], 5)
    only_message(up, msgid, ["a@example.net"])


# --------------------------------------------------------------------------
# bounces

def test_upstream_5xx_bounces_to_the_sender(world, upstream_factory,
                                            relay_factory):
    """The upstream refuses one of two recipients with 550 5.1.1: the
    other is delivered, and a DSN from <> to the sender arrives upstream
    too (multipart/report, Status 5.1.1, the recipient named)."""
    up = upstream_factory("--rcpt-code", "bad@example.net=550")
    conf, queue = relay_conf(world)
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    data = make_message(1, "bounce")
    qid = smtp_send(d.port, "sender@example.com",
                    ["good@example.net", "bad@example.net"], data)
    msgs = up.wait_messages(2)
    assert len(msgs) == 2
    orig = [m for m in msgs if m["sender"] == "sender@example.com"]
    dsn = [m for m in msgs if m["sender"] == ""]
    assert len(orig) == 1 and len(dsn) == 1, [(m["sender"], m["rcpts"])
                                              for m in msgs]
    assert orig[0]["rcpts"] == ["good@example.net"]
    _, rest = split_received(orig[0]["data"])
    assert rest == with_x_peer(data, "127.0.0.1")
    dsn = dsn[0]
    assert dsn["mail_from"].split(" ")[0] == "<>"
    assert dsn["rcpts"] == ["sender@example.com"]
    m = d.wait_log(r"relay: event=bounce queue_id=(\S+) original_queue_id=%s "
                   r"to=<sender@example\.com>$" % qid)[0]
    bqid = m.group(1)
    received, body = split_received(dsn["data"])
    assert received.group("qid").decode() == bqid
    text = body.decode("utf-8", "replace")
    head, _, _ = text.partition("\r\n\r\n")
    assert "\r\nTo: <sender@example.com>\r\n" in "\r\n" + head + "\r\n"
    assert "Content-Type: multipart/report; report-type=delivery-status;" \
        in head
    assert "X-Peer:" not in head
    assert "Content-Type: message/delivery-status\r\n" in text
    assert "Final-Recipient: rfc822; bad@example.net\r\n" in text
    assert "Action: failed\r\n" in text
    assert "Status: 5.1.1\r\n" in text
    assert "Diagnostic-Code: smtp; 550 5.1.1" in text
    assert "good@example.net" not in text.partition(
        "message/delivery-status")[2].partition("text/rfc822-headers")[0]
    # The original's headers come back.
    assert "Message-ID: <bounce-1@test.example>" in text
    d.wait_log(r"relay: event=attempt queue_id=%s .*rcpt=<bad@example\.net> "
               r"result=failed code=550 " % qid)
    d.wait_log(r"relay: event=removed queue_id=%s$" % qid)
    d.wait_log(r"relay: event=removed queue_id=%s$" % bqid)
    assert queue_files(queue) == []

    # A message from <> that fails produces no DSN.
    qid2 = smtp_send(d.port, "", ["bad@example.net"], make_message(2,
                                                                   "null"))
    d.wait_log(r"relay: event=attempt queue_id=%s .*rcpt=<bad@example\.net> "
               r"result=failed code=550 " % qid2)
    d.wait_log(r"relay: event=removed queue_id=%s$" % qid2)
    assert not d.log_grep(r"event=bounce queue_id=\S+ original_queue_id=%s" % qid2)
    # And the failed bounce's own failure neither: the upstream has what it
    # had.  A third, good message is the sentinel that the relay moved on.
    qid3 = smtp_send(d.port, "sender@example.com", ["good@example.net"],
                     make_message(3, "sentinel"))
    msgs = wait_for(lambda: (lambda m: m if any(
        message_id(x["data"]) == "sentinel-3@test.example" for x in m)
        else None)(up.messages()), scaled(15), "the sentinel")
    assert len(msgs) == 3, [(m["sender"], m["rcpts"]) for m in msgs]
    assert [m["sender"] for m in msgs].count("") == 1
    # The upstream has the sentinel before the relay has its reply and
    # removes it: wait for that.
    wait_for(lambda: queue_files(queue) == [], scaled(10), "an empty queue")


# --------------------------------------------------------------------------
# forwarding: byte for byte

ODD_MESSAGES = [
    # Dot lines: stuffed by the client, unstuffed on receipt, stuffed
    # again towards the upstream, unstuffed there.
    b"Subject: dots\r\n\r\n.\r\n..\r\n.x\r\n. \r\nend\r\n",
    # No empty line: X-Peer goes after the last line.
    b"Subject: no body\r\nX-Other: value\r\n",
    # No header at all: X-Peer before the first (empty) line.
    b"\r\nbody only\r\n",
    # Folded header, tabs, a 998-octet line, trailing blanks kept.
    b"Subject: folded\r\n\tcontinued  \r\nX-Long: " + b"x" * 990 +
    b"\r\n\r\n" + b"y" * 998 + b"\r\n \t \r\n\r\n\r\n",
    # 8-bit body (BODY=8BITMIME).
    "Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    "caf\u00e9 \u2603\r\n".encode(),
]


@pytest.mark.parametrize("x_peer", ["yes", "no"])
def test_forwarding_is_byte_exact(world, upstream_factory, relay_factory,
                                  x_peer):
    up = upstream_factory()
    conf, queue = relay_conf(world, lines=["x-peer-header " + x_peer])
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    c = d.client()
    c.ehlo("odd.example")
    qids = []
    for i, data in enumerate(ODD_MESSAGES):
        eight = any(b >= 0x80 for b in data)
        c.expect("MAIL FROM:<s%d@example.com>%s" % (
            i, " BODY=8BITMIME" if eight else ""), 250, "2.1.0")
        c.expect("RCPT TO:<r%d@example.net>" % i, 250, "2.1.5")
        c.expect("DATA", 354)
        stuffed = b"\r\n" + data
        stuffed = stuffed.replace(b"\r\n.", b"\r\n..")[2:]
        c.send(stuffed + b".\r\n")
        r = check(c.reply(), 250, "2.0.0")
        qids.append(r.message.rsplit(" ", 1)[1])
    c.expect("QUIT", 221, "2.0.0")
    msgs = up.wait_messages(len(ODD_MESSAGES))
    assert len(msgs) == len(ODD_MESSAGES)
    bysender = {m["sender"]: m for m in msgs}
    for i, data in enumerate(ODD_MESSAGES):
        m = bysender["s%d@example.com" % i]
        assert m["rcpts"] == ["r%d@example.net" % i]
        received, rest = split_received(m["data"])
        check_received(received, "odd.example", "127.0.0.1", qids[i],
                       "r%d@example.net" % i)
        want = with_x_peer(data, "127.0.0.1") if x_peer == "yes" else data
        assert rest == want, (i, rest[:200])
        if any(b >= 0x80 for b in data):
            assert "BODY=8BITMIME" in m["mail_from"].upper()


def test_helo_client_multiple_recipients_and_upstream_without_ehlo(
        world, upstream_factory, relay_factory):
    """A HELO client: Received says "with SMTP"; two recipients: no
    "for" clause; an upstream that refuses EHLO gets HELO and the same
    bytes."""
    up = upstream_factory("--no-ehlo")
    conf, _ = relay_conf(world)
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    c = d.client()
    c.expect("HELO old.example", 250)
    c.expect("MAIL FROM:<s@example.com>", 250)
    c.expect("RCPT TO:<a@example.net>", 250)
    c.expect("RCPT TO:<b@example.org>", 250)
    c.expect("DATA", 354)
    data = make_message(1, "helo")
    c.send(data + b".\r\n")
    r = c.reply()
    assert r.code == 250, r.raw
    qid = r.message.rsplit(" ", 1)[1]
    [m] = up.wait_messages(1)
    assert m["esmtp"] is False
    assert m["rcpts"] == ["a@example.net", "b@example.org"]
    received, rest = split_received(m["data"])
    check_received(received, "old.example", "127.0.0.1", qid, None,
                   proto=b"SMTP")
    assert rest == with_x_peer(data, "127.0.0.1")


def test_dsn_boundary_with_a_long_hostname(world, upstream_factory,
                                           relay_factory):
    """With a host name of 120 octets the DSN's MIME boundary still has
    at most 70 characters (RFC 2046 5.1.1) and the DSN parses as a
    multipart/report of three parts (found by regress/fuzz/fuzz_bounce.c:
    the boundary was the queue ID and the whole host name)."""
    host = ".".join(["h" * 59, "l" * 59]) + ".x"
    up = upstream_factory("--rcpt-code", "bad@example.net=550")
    conf, _ = relay_conf(world, lines=["hostname " + host])
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr,
                      hostname=host)
    smtp_send(d.port, "sender@example.com", ["bad@example.net"],
              make_message(1, "long host"))
    [dsn] = [m for m in up.wait_messages(1) if m["sender"] == ""]
    _, body = split_received(dsn["data"])
    msg = email.message_from_bytes(body)
    boundary = msg.get_boundary()
    assert boundary is not None and 1 <= len(boundary) <= 70, boundary
    assert msg.get_content_type() == "multipart/report"
    assert [p.get_content_type() for p in msg.get_payload()] == [
        "text/plain", "message/delivery-status", "text/rfc822-headers"]


def test_upstream_4xx_until_lifetime_then_dsn(world, upstream_factory,
                                              relay_factory):
    """An upstream that answers 450 for a recipient: deferred, retried
    with back-off, and when queue-lifetime is over, a DSN (Status 5.4.7)
    to the sender; the other recipient was delivered at once."""
    up = upstream_factory("--rcpt-code", "slow@example.net=450")
    conf, queue = relay_conf(world, lines=["queue-retry 1s",
                                           "queue-lifetime 3s"])
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    qid = smtp_send(d.port, "sender@example.com",
                    ["slow@example.net", "fast@example.net"],
                    make_message(1, "slow"))
    d.wait_log(r"relay: event=attempt queue_id=%s .*rcpt=<slow@example\.net> "
               r"result=deferred code=450 " % qid)
    d.wait_log(r"relay: event=attempt queue_id=%s .*rcpt=<slow@example\.net> "
               r"result=deferred " % qid, count=2, timeout=scaled(10))
    d.wait_log(r"relay: event=expired queue_id=%s rcpt=<slow@example\.net>$"
               % qid, timeout=scaled(15))
    bqid = d.wait_log(r"relay: event=bounce queue_id=(\S+) original_queue_id=%s "
                      r"to=<sender@example\.com>$" % qid)[0].group(1)
    d.wait_log(r"relay: event=removed queue_id=%s$" % bqid)
    d.wait_log(r"relay: event=removed queue_id=%s$" % qid)
    msgs = up.messages()
    assert [m["rcpts"] for m in msgs] == [["fast@example.net"],
                                          ["sender@example.com"]]
    dsn = msgs[1]
    assert dsn["sender"] == ""
    text = dsn["data"].decode("utf-8", "replace")
    assert "Final-Recipient: rfc822; slow@example.net\r\n" in text
    assert "Status: 5.4.7\r\n" in text
    assert "fast@example.net" not in text.partition(
        "message/delivery-status")[2].partition("text/rfc822-headers")[0]
    # Deferred attempts were a few (back-off), not one per poll.
    n = len(d.log_grep(r"event=attempt queue_id=%s .*rcpt=<slow" % qid))
    assert 2 <= n <= 4, n
    assert queue_files(queue) == []


@ipv6_only
def test_ipv6_loopback_relays(world, upstream_factory, relay_factory):
    """::1 is loopback: with no policy it may relay.  X-Peer carries the
    address as Python's PureProxy did; Received: carries it as an RFC
    5321 address literal, [IPv6:::1] (section 4.1.3: IPv6 literals
    have the IPv6: tag)."""
    up = upstream_factory()
    conf, _ = relay_conf(world)
    d = relay_factory("-f", conf, "-c", "PureProxy", second=up.addr,
                      host="::1")
    c = d.client()
    c.ehlo("v6.example")
    msgid = send_good(c, ["x@example.org"], 1)
    [m] = up.wait_messages(1)
    assert m["rcpts"] == ["x@example.org"]
    assert message_id(m["data"]) == msgid
    assert b"\r\nX-Peer: ::1\r\n\r\n" in m["data"]
    first = m["data"].split(b"\r\n", 1)[0]
    assert first == b"Received: from v6.example ([IPv6:::1])", first
    received, _ = split_received(m["data"])
    assert received.group("ip") == b"IPv6:::1"


def test_reload_narrowing_policy_spares_draining_sessions(
        world, upstream_factory, relay_factory):
    """A session that began before a SIGHUP which narrows the relay
    guard finishes its message and goes on (its worker is retired, not
    closed), while new sessions get the new policy."""
    import signal
    up = upstream_factory()
    conf, queue = relay_conf(world, lines=["relay-domains example.net"])
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    old = d.wait_workers(len(d.sessions()))
    c = d.client()
    c.ehlo()
    c.expect("MAIL FROM:<sender@example.com>", 250, "2.1.0")
    rcpt(c, "a@example.net", 250, "2.1.5")
    # The policy narrows: example.net is no longer relayed.
    with open(conf, "w") as f:
        f.write("queue %s\nrelay-domains example.org\n" % queue)
    d.send_signal(signal.SIGHUP)
    d.wait_log(r"relay: event=policy-reloaded")
    c.expect("DATA", 354)
    data = make_message(1, "reload")
    c.send(data + b".\r\n")
    check(c.reply(), 250, "2.0.0", what="end of data")
    # Its worker is retired, and the session goes on (SPEC section 12).
    c.expect("NOOP", 250, "2.0.0")
    c.expect("QUIT", 221, "2.0.0")
    only_message(up, message_id(data), ["a@example.net"])
    assert not d.log_grep(r"worker-violation|event=kill")
    # A new session is under the new policy.
    d.wait_workers(len(old), exclude=old)
    n = d.client()
    n.ehlo()
    n.expect("MAIL FROM:<sender@example.com>", 250, "2.1.0")
    rcpt(n, "b@example.net", 550, "5.7.1")
    n.expect("QUIT", 221, "2.0.0")

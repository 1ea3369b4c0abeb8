"""What issue 15 found untested end to end: SIGUSR1's statistics, a
`listen on ::1` line, expiry with the upstream unreachable, an upstream
without 8BITMIME or SMTPUTF8, the DSN parsed as an RFC 3464 message, and
the test upstream's --mail-code, --data-code and --no-pipelining modes.

A DSN goes to the one upstream, like all mail (this build has no
routes yet): where that upstream refuses the sender, it is told to take
mail from <> (--take-bounces), or comes back for the DSN."""
import email
import email.policy
import email.utils
import glob
import os
import signal
import socket
import time

import pytest

from harness import HOSTNAME, Client, check, free_port, scaled, wait_for
from relay_harness import (make_message, queue_files, relay_conf,  # noqa
                           relay_factory, smtp_send, split_received,
                           upstream_factory, with_x_peer, world)
from skips import ipv6_only


# --------------------------------------------------------------------------
# helpers

def one_upstream(world, up, lines=()):
    """A relay configuration with up as its only upstream."""
    return relay_conf(world, lines=[
        "mode relay", "upstream 127.0.0.1 port %d" % up.port] + list(lines))


def parse_dsn(data, sender):
    """The DSN data (as the upstream got it) parsed with the email
    package; checks the RFC 3464 / RFC 6522 structure and returns
    (message, per-message fields, [per-recipient fields])."""
    _, body = split_received(data)
    msg = email.message_from_bytes(body, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report", msg["Content-Type"]
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Auto-Submitted"] == "auto-replied"     # RFC 3834 5
    assert email.utils.parseaddr(msg["To"])[1] == sender
    assert email.utils.parsedate_to_datetime(msg["Date"]) is not None
    assert msg["Message-ID"]
    assert "X-Peer" not in msg
    parts = list(msg.iter_parts())
    # RFC 6522 3: human-readable, then the report, then the original.
    assert [p.get_content_type() for p in parts][:2] == [
        "text/plain", "message/delivery-status"], \
        [p.get_content_type() for p in parts]
    assert parts[2].get_content_type() in ("text/rfc822-headers",
                                           "message/rfc822")
    blocks = parts[1].get_payload()
    assert len(blocks) >= 2, blocks
    per_msg, per_rcpt = blocks[0], blocks[1:]
    # RFC 3464 2.2: Reporting-MTA is required, Arrival-Date a date.
    mta_type, _, mta = per_msg["Reporting-MTA"].partition(";")
    assert (mta_type.strip().lower(), mta.strip()) == ("dns", HOSTNAME)
    arrival = email.utils.parsedate_to_datetime(per_msg["Arrival-Date"])
    assert abs(arrival.timestamp() - time.time()) < 300, arrival
    for r in per_rcpt:
        # RFC 3464 2.3: Final-Recipient, Action and Status are required.
        assert r["Final-Recipient"] and r["Action"] and r["Status"], r
    return msg, per_msg, per_rcpt


def rcpt_fields(block):
    kind, _, addr = block["Final-Recipient"].partition(";")
    assert kind.strip().lower() == "rfc822"
    return addr.strip(), block["Action"], block["Status"]


def the_dsn(up, sender, timeout=None):
    """The one message from <> that up received."""
    msgs = up.wait_messages(1, timeout=timeout)
    dsns = [m for m in msgs if m["sender"] == ""]
    assert len(dsns) == 1, [(m["sender"], m["rcpts"]) for m in msgs]
    assert dsns[0]["rcpts"] == [sender]
    return dsns[0]


# --------------------------------------------------------------------------
# SIGUSR1

STATS_RE = (r"parent: event=stats role=(session|relay) pid=(\d+) "
            r"sessions=(\d+)$")


def stats_after_usr1(d, before):
    """Send SIGUSR1; the event=stats lines it logged (one per child)."""
    d.send_signal(signal.SIGUSR1)
    n = len(d.children())
    lines = wait_for(lambda: (lambda m: m if len(m) >= before + n else None)(
        d.log_grep(STATS_RE)), scaled(5), "%d stats lines" % n)
    return lines[before:]


def test_sigusr1_logs_stats_per_child(smtpd_factory):
    """One event=stats line per child: its role, its pid, its open
    sessions; three open sessions are counted, then none once closed."""
    d = smtpd_factory(workers=2)
    workers = d.wait_workers(2)
    relay = wait_for(d.relays, scaled(5), "the relay")
    clients = [d.client() for _ in range(3)]
    for c in clients:
        c.ehlo()
    seen = 0

    def counted(want):
        nonlocal seen
        got = stats_after_usr1(d, seen)
        seen += len(got)
        roles = sorted((m.group(1), int(m.group(2))) for m in got)
        assert roles == sorted([("session", p) for p in workers] +
                               [("relay", p) for p in relay]), roles
        for m in got:
            if m.group(1) == "relay":
                assert m.group(3) == "0", m.group(0)
        total = sum(int(m.group(3)) for m in got if m.group(1) == "session")
        return total == want or None

    # The workers tell the parent their load as it changes: poll.
    wait_for(lambda: counted(3), scaled(5), "3 sessions counted",
             interval=0.1)
    for c in clients:
        c.expect("QUIT", 221, "2.0.0")
        assert c.wait_closed()
    wait_for(lambda: counted(0), scaled(5), "0 sessions counted",
             interval=0.1)
    assert not d.log_grep(r"retiring=")


# --------------------------------------------------------------------------
# listen on ::1 in the configuration file

@ipv6_only
def test_listen_on_ipv6_loopback_in_config(smtpd_factory, tmp_path):
    """`listen on ::1 port N`: mail over ::1 is taken and printed with
    X-Peer ::1, the start line names the listener, and nothing listens
    on 127.0.0.1 at that port."""
    port = free_port(socket.AF_INET6, "::1")
    conf = tmp_path / "v6.conf"
    conf.write_text("listen on ::1 port %d\n" % port)
    d = smtpd_factory("-f", str(conf), host="::1", listen="", wait=False)
    d.port = port
    d.start()
    assert d.log_grep(r"event=start .*listen=\[?::1\]?:%d " % port), \
        d.stderr()
    c = d.client()
    c.ehlo()
    c.expect("MAIL FROM:<a@example.com>", 250, "2.1.0")
    c.expect("RCPT TO:<b@example.com>", 250, "2.1.5")
    c.expect("DATA", 354)
    c.send(b"Subject: v6\r\n\r\nover ::1\r\n.\r\n")
    check(c.reply(), 250, "2.0.0")
    [block] = d.wait_blocks(1)
    assert "\nX-Peer: ::1\n" in block, block
    assert d.log_grep(r"event=connect .*client=::1 ")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), scaled(1)).close()


# --------------------------------------------------------------------------
# expiry with the upstream unreachable

def test_unreachable_upstream_expires_with_dsn(world, upstream_factory,
                                               relay_factory):
    """Nothing listens at the upstream's port: the message is tried
    again, expires after queue-lifetime (event=expired), and a DSN to
    the sender (Action failed, Status 5.4.7) waits in the queue until
    the upstream is back, then arrives there; the original never."""
    up = upstream_factory(start=False)
    up.port = free_port()                   # nothing listens there yet
    conf, queue = one_upstream(world, up, ["queue-retry 1s",
                                           "queue-lifetime 4s"])
    d = relay_factory("-f", conf)
    t0 = time.monotonic()
    qid = smtp_send(d.port, "sender@example.com", ["far@example.net"],
                    make_message(1, "unreachable"))
    d.wait_log(r"relay: event=expired queue_id=%s rcpt=<far@example\.net>$"
               % qid, timeout=scaled(20))
    assert time.monotonic() - t0 >= 3.5
    d.wait_log(r"relay: event=bounce queue_id=\S+ original_queue_id=%s "
               r"to=<sender@example\.com>$" % qid)
    up.start()
    dsn = the_dsn(up, "sender@example.com", timeout=scaled(15))
    _, _, rcpts = parse_dsn(dsn["data"], "sender@example.com")
    assert [rcpt_fields(r) for r in rcpts] == [
        ("far@example.net", "failed", "5.4.7")]
    d.wait_log(r"relay: event=removed queue_id=%s$" % qid)
    wait_for(lambda: queue_files(queue) == [], scaled(10), "an empty queue")
    assert [m["sender"] for m in up.messages()] == [""]


# --------------------------------------------------------------------------
# an upstream without 8BITMIME or SMTPUTF8

EIGHT_BIT = ("Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n"
             "Content-Transfer-Encoding: 8bit\r\n\r\ncaf\u00e9\r\n").encode()


def test_upstream_without_smtputf8_bounces(world, upstream_factory,
                                           relay_factory):
    """RFC 6531 3.4: a message sent with SMTPUTF8 is not downgraded; an
    upstream that lacks the extension gets nothing, and the sender gets
    a DSN (relay/client.c refuses it locally with 553)."""
    plain = upstream_factory("--no-smtputf8")
    conf, queue = one_upstream(world, plain)
    d = relay_factory("-f", conf, "-u")
    c = d.client()
    c.ehlo()
    c.expect("MAIL FROM:<sender@example.com> SMTPUTF8", 250, "2.1.0")
    c.expect("RCPT TO:<j\u00f6rg@example.net>".encode(), 250, "2.1.5")
    c.expect("DATA", 354)
    c.send(EIGHT_BIT + b".\r\n")
    qid = check(c.reply(), 250, "2.0.0").message.rsplit(" ", 1)[1]
    d.wait_log(r"relay: event=attempt queue_id=%s .*result=failed "
               r"code=553 " % qid)
    dsn = the_dsn(plain, "sender@example.com")
    _, _, rcpts = parse_dsn(dsn["data"], "sender@example.com")
    [(addr, action, status)] = [rcpt_fields(r) for r in rcpts]
    assert (addr, action) == ("j\u00f6rg@example.net", "failed")
    # RFC 6531 3.7.1: X.6.7, non-ASCII addresses not permitted.
    assert status == "5.6.7", status
    # Only the DSN: the message itself never went out.
    assert [m["sender"] for m in plain.messages()] == [""]
    wait_for(lambda: queue_files(queue) == [], scaled(10), "an empty queue")


def test_upstream_without_8bitmime_gets_the_bytes(world, upstream_factory,
                                                  relay_factory):
    """An 8-bit message (BODY=8BITMIME) to an upstream without 8BITMIME:
    relay/client.c neither converts nor bounces it: it sends it as is,
    without the BODY parameter the upstream did not offer, and logs
    that it did.  (RFC 6152 3 asks for a 7-bit conversion or a DSN
    here: reported in issue 15's note.)"""
    seven = upstream_factory("--no-8bitmime")
    conf, queue = one_upstream(world, seven)
    d = relay_factory("-f", conf)
    c = d.client()
    c.ehlo()
    c.expect("MAIL FROM:<sender@example.com> BODY=8BITMIME", 250, "2.1.0")
    c.expect("RCPT TO:<r@example.net>", 250, "2.1.5")
    c.expect("DATA", 354)
    c.send(EIGHT_BIT + b".\r\n")
    check(c.reply(), 250, "2.0.0")
    [m] = seven.wait_messages(1)
    assert "BODY=" not in m["mail_from"].upper(), m["mail_from"]
    _, rest = split_received(m["data"])
    assert rest.endswith(EIGHT_BIT.split(b"\r\n\r\n", 1)[1]), rest
    assert d.log_grep(r"event=upstream-no-8bitmime queue_id=[0-9A-F]{16} "
                      r"action=sent-as-is")
    wait_for(lambda: queue_files(queue) == [], scaled(10), "an empty queue")


# --------------------------------------------------------------------------
# a stop while a delivery is in flight

def test_stop_lets_the_delivery_in_flight_finish(world, upstream_factory,
                                                 relay_factory):
    """SIGTERM while the upstream has the message and has not answered
    the final dot yet: the relay waits for the 250 and records it, so
    the daemon started again on the same queue sends nothing twice.
    (Before, the relay exited at once and the restart sent it again.)"""
    up = upstream_factory("--data-delay", "1500")
    conf, queue = one_upstream(world, up)
    d = relay_factory("-f", conf)
    qid = smtp_send(d.port, "sender@example.com", ["r@example.net"],
                    make_message(1, "inflight"))
    up.wait_messages(1)                 # in flight: the 250 is 1.5 s away
    assert d.stop() == 0
    assert d.log_grep(r"relay: event=stop-draining in_flight=1$")
    assert d.log_grep(r"relay: event=removed queue_id=%s$" % qid)
    assert queue_files(queue) == []
    again = relay_factory("-f", conf)
    again.wait_log(r"relay: event=queue-loaded messages=0$")
    assert len(up.messages()) == 1


def test_stop_waits_no_longer_than_stop_timeout(world, upstream_factory,
                                                relay_factory):
    """An upstream that never answers the final dot holds the stop for
    stop-timeout only; the message stays queued and goes after the
    restart (at least once, never lost)."""
    up = upstream_factory("--hang-first", "1")
    conf, queue = one_upstream(world, up, ["stop-timeout 1s"])
    d = relay_factory("-f", conf)
    qid = smtp_send(d.port, "sender@example.com", ["r@example.net"],
                    make_message(1, "hung"))
    wait_for(lambda: glob.glob(os.path.join(up.dir, ".hung-*")), scaled(10),
             "the upstream to hang at the final dot")
    t0 = time.monotonic()
    assert d.stop() == 0
    assert time.monotonic() - t0 < scaled(8)
    assert d.log_grep(r"relay: event=stop in_flight=1 reason=stop-timeout$")
    assert queue_files(queue) != []
    again = relay_factory("-f", conf)
    [m] = up.wait_messages(1, timeout=scaled(20))
    assert b"hung-1" in m["data"]
    again.wait_log(r"relay: event=removed queue_id=%s$" % qid)


# --------------------------------------------------------------------------
# the upstream's forced replies and --no-pipelining

def test_upstream_mail_code_5xx_bounces(world, upstream_factory,
                                        relay_factory):
    """MAIL FROM refused with 550 (--mail-code): every recipient failed,
    one DSN naming both, the upstream's reply as Diagnostic-Code."""
    refusing = upstream_factory("--mail-code", "550", "--take-bounces")
    conf, queue = one_upstream(world, refusing)
    d = relay_factory("-f", conf)
    qid = smtp_send(d.port, "sender@example.com",
                    ["a@example.net", "b@example.net"],
                    make_message(1, "mailcode"))
    d.wait_log(r"relay: event=attempt queue_id=%s .*result=failed "
               r"code=550 " % qid, count=2)
    dsn = the_dsn(refusing, "sender@example.com")
    msg, _, rcpts = parse_dsn(dsn["data"], "sender@example.com")
    assert sorted(rcpt_fields(r)[:2] for r in rcpts) == [
        ("a@example.net", "failed"), ("b@example.net", "failed")]
    for r in rcpts:
        assert r["Status"].startswith("5."), r["Status"]
        assert "550 mail refused" in r["Diagnostic-Code"], \
            r["Diagnostic-Code"]
    assert [m["sender"] for m in refusing.messages()] == [""]
    # The original's headers come back in the third part.
    assert "<mailcode-1@test.example>" in \
        list(msg.iter_parts())[2].get_content()
    wait_for(lambda: queue_files(queue) == [], scaled(10), "an empty queue")


def test_nul_in_headers_is_not_copied_into_the_dsn(world, upstream_factory,
                                                   relay_factory):
    """A NUL in the bounced message's headers (RFC 5322 2.1 allows
    none) is left out of the DSN's third part; the rest of the line
    comes back."""
    refusing = upstream_factory("--mail-code", "550", "--take-bounces")
    conf, queue = one_upstream(world, refusing)
    d = relay_factory("-f", conf)
    data = (b"Subject: with a nul\x00inside\r\nMessage-ID: <nul@x>\r\n"
            b"\r\nbody\r\n")
    qid = smtp_send(d.port, "sender@example.com", ["a@example.net"], data)
    d.wait_log(r"relay: event=attempt queue_id=%s .*result=failed "
               r"code=550 " % qid)
    dsn = the_dsn(refusing, "sender@example.com")
    assert b"\x00" not in dsn["data"]
    assert b"Subject: with a nulinside\r\n" in dsn["data"]
    parse_dsn(dsn["data"], "sender@example.com")
    wait_for(lambda: queue_files(queue) == [], scaled(10), "an empty queue")


def test_upstream_data_code_4xx_retried_then_delivered_once(
        world, upstream_factory, relay_factory):
    """The final dot answered 451 (--data-code): deferred, kept, tried
    again; once the upstream takes it, it arrives exactly once."""
    up = upstream_factory("--data-code", "451", name="flaky")
    conf, queue = one_upstream(world, up, ["queue-retry 1s"])
    d = relay_factory("-f", conf)
    data = make_message(1, "datacode")
    qid = smtp_send(d.port, "sender@example.com", ["r@example.net"], data)
    d.wait_log(r"relay: event=attempt queue_id=%s .*result=deferred "
               r"code=451 " % qid)
    assert up.messages() == []
    assert queue_files(queue) != []
    # The same port, the same directory, no forced reply any more.
    up.stop()
    up.args = []
    up.start()
    [m] = up.wait_messages(1, timeout=scaled(20))
    _, rest = split_received(m["data"])
    assert rest == with_x_peer(data, "127.0.0.1")
    d.wait_log(r"relay: event=removed queue_id=%s$" % qid)
    wait_for(lambda: queue_files(queue) == [], scaled(10), "an empty queue")
    assert len(up.messages()) == 1
    assert not d.log_grep(r"event=bounce ")


def test_upstream_without_pipelining_gets_one_command_at_a_time(
        world, upstream_factory, relay_factory):
    """An upstream that does not offer PIPELINING: the relay waits for
    each reply before the next command (RFC 2920 3), and the message
    with its three recipients arrives all the same."""
    up = upstream_factory("--no-pipelining")
    conf, queue = one_upstream(world, up)
    d = relay_factory("-f", conf)
    rcpts = ["r%d@example.net" % i for i in range(3)]
    for i in range(2):
        smtp_send(d.port, "sender@example.com", rcpts,
                  make_message(i, "nopipe"))
    msgs = up.wait_messages(2)
    for m in msgs:
        assert m["rcpts"] == rcpts
        assert m["early"] == 0, "the relay pipelined: %r" % m
    wait_for(lambda: queue_files(queue) == [], scaled(10), "an empty queue")


def test_upstream_with_pipelining_is_pipelined(world, upstream_factory,
                                               relay_factory):
    """The control of the test above: the same detector, on an
    upstream that offers PIPELINING but reads unbuffered, sees the
    relay send ahead (so "early": 0 above means something)."""
    up = upstream_factory("--no-pipelining", "--offer-pipelining")
    conf, queue = one_upstream(world, up)
    d = relay_factory("-f", conf)
    smtp_send(d.port, "sender@example.com",
              ["r%d@example.net" % i for i in range(3)],
              make_message(1, "pipe"))
    [m] = up.wait_messages(1)
    assert m["early"] > 0, m
    wait_for(lambda: queue_files(queue) == [], scaled(10), "an empty queue")

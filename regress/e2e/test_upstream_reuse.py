"""SPEC 7.2: an upstream connection that takes its next message as soon
as the last one is done goes on without the RSET probe (a round trip a
message saved); should the upstream have closed it meanwhile, nothing
was taken and the message goes at once on a new connection, not after
queue-retry."""
import smtplib
import time

from harness import scaled
from relay_harness import (make_message, relay_conf,  # noqa: F401
                           relay_factory, upstream_factory, world)

NOPRIV = ("-d", "-n")


def send_burst(port, n, tag):
    s = smtplib.SMTP("127.0.0.1", port, timeout=scaled(20))
    for i in range(n):
        s.sendmail("a@example.com", ["r@example.net"], make_message(i, tag))
    s.quit()


def test_busy_connection_is_reused_without_rset(world, upstream_factory,
                                                relay_factory):
    """One connection (max-connections 1), five messages back to back:
    all on that connection, and no RSET between them."""
    up = upstream_factory()
    conf, _ = relay_conf(world, lines=[
        "upstream u host 127.0.0.1 port %d plain max-connections 1" %
        up.port])
    d = relay_factory("-f", conf, "-c", "relay", args=NOPRIV)
    send_burst(d.port, 5, "busy")
    msgs = up.wait_messages(5)
    assert [m["conn"] for m in msgs] == [1] * 5, msgs
    assert [m["rsets"] for m in msgs] == [0] * 5
    assert d.log_grep(r"event=upstream-reuse-failed ") == []


def test_closed_fresh_connection_sends_on_a_new_one(world, upstream_factory,
                                                   relay_factory):
    """The upstream closes each connection at its second MAIL, without
    a word: every message still arrives at once (queue-retry is 10
    minutes), one per connection, each exactly once, and the relay says
    upstream-reuse-failed, never that a delivery was deferred."""
    up = upstream_factory("--close-at-mail", "2")
    conf, queue = relay_conf(world, lines=[
        "upstream u host 127.0.0.1 port %d plain max-connections 1" %
        up.port, "queue-retry 10m"])
    d = relay_factory("-f", conf, "-c", "relay", args=NOPRIV)
    t0 = time.monotonic()
    send_burst(d.port, 4, "closed")
    msgs = up.wait_messages(4, timeout=scaled(20))
    assert time.monotonic() - t0 < scaled(20)
    assert len(msgs) == 4
    assert sorted(m["conn"] for m in msgs) == sorted(
        set(m["conn"] for m in msgs)), "two messages on one connection"
    d.wait_log(r"event=upstream-reuse-failed ", count=3)
    assert d.log_grep(r"result=deferred") == []
    d.wait_log(r"event=removed ", count=4)

"""The spool file asked for at the first accepted RCPT (so that DATA's
354 waits for no round trip to the relay): a transaction that ends
without DATA gives it back, so the relay holds nothing for sessions
that never send a message; DATA after a restart of the relay asks the
new one, never waits for the old one's file; what is sent arrives
whole."""
import os
import signal
import smtplib

from harness import scaled, wait_for
from relay_harness import (make_message, message_id, relay_conf,  # noqa
                           relay_factory, split_received, upstream_factory,
                           world)

SENDER = "sender@example.com"
RCPT = "rcpt@example.net"


def relay_fds(d):
    return len(os.listdir("/proc/%d/fd" % d.relay_pid()))


def test_transactions_without_data_hold_nothing(world, upstream_factory,
                                                relay_factory):
    """60 sessions that stop after RCPT (QUIT, RSET, or the connection
    dropped) leave the relay with the descriptors it had before, and
    the message of a session that goes on to DATA arrives as sent."""
    up = upstream_factory()
    conf, queue = relay_conf(world)
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    body = make_message(0, "warm")
    with smtplib.SMTP("127.0.0.1", d.port, timeout=scaled(10)) as s:
        s.sendmail(SENDER, [RCPT], body)
    up.wait_messages(1)
    base = wait_for(lambda: relay_fds(d), scaled(5), "the relay's fds")
    for i in range(60):
        s = smtplib.SMTP("127.0.0.1", d.port, timeout=scaled(10))
        s.ehlo("client.example")
        s.mail(SENDER)
        assert s.rcpt(RCPT)[0] == 250
        if i % 3 == 0:
            s.quit()
        elif i % 3 == 1:
            s.rset()
            s.quit()
        else:
            s.sock.close()
    wait_for(lambda: relay_fds(d) <= base, scaled(10),
             "the relay back at %d descriptors" % base)
    body = make_message(1, "after")
    with smtplib.SMTP("127.0.0.1", d.port, timeout=scaled(10)) as s:
        s.ehlo("client.example")
        s.mail(SENDER)
        s.rcpt(RCPT)
        s.rset()
        s.sendmail(SENDER, [RCPT], body)
    up.wait_messages(2)
    got = split_received(up.messages()[-1]["data"])[1]
    assert message_id(got) == message_id(body)


def test_data_after_relay_restart_is_answered(world, upstream_factory,
                                              relay_factory):
    """The relay is killed between RCPT and DATA (the spool file asked
    ahead is gone with it): DATA asks the new relay and the message gets
    its 250 and arrives; nothing waits for the file of the dead one."""
    up = upstream_factory()
    conf, queue = relay_conf(world)
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    d.allow_child_death = True
    s = smtplib.SMTP("127.0.0.1", d.port, timeout=scaled(10))
    s.ehlo("client.example")
    s.mail(SENDER)
    assert s.rcpt(RCPT)[0] == 250
    relay = d.relay_pid()
    os.kill(relay, signal.SIGKILL)
    d.wait_log(r"event=relay-lost")
    wait_for(lambda: (lambda p: p if p and p != relay else None)(
        d.relay_pid()), scaled(10), "a new relay process")
    body = make_message(2, "restart")
    code, _ = s.data(body)
    assert code == 250, code
    s.quit()
    up.wait_messages(1)
    got = split_received(up.messages()[0]["data"])[1]
    assert message_id(got) == message_id(body)

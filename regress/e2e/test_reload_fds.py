"""A reload that enlarges the pool (SPEC 12: workers is taken by a
reload): the relay, which runs on, takes a channel for each new worker
beside those of the old ones still draining, and must have the
descriptors for them; it was bounded by the pool and max-sessions of
its start, ran out, and died ("read from parent: Bad message"), taking
every session's relay with it.

Clients: smtplib on loopback; the upstream is the recording
regress/lib/upstream.py.
"""
import signal
import smtplib

from harness import free_port, scaled, wait_for
from relay_harness import (relay_conf, relay_factory,  # noqa: F401
                           upstream_factory, world)


def test_reload_grows_pool_relay_keeps_up(relay_factory, world,
                                          upstream_factory):
    up = upstream_factory()
    port = free_port()
    lines = ["listen on 127.0.0.1 port %d" % port,
             "relay-domains example.net",
             "upstream 127.0.0.1 port %d" % up.port, "max-sessions 4"]
    conf, _ = relay_conf(world, lines=lines + ["workers 2"])
    d = relay_factory("-f", conf, "-c", "relay", listen="", wait=False,
                      workers=None)
    d.port = port
    d.start()
    known = set(d.wait_workers(2))
    relay = d.relay_pid()
    # A session kept across the reloads, on a worker that drains.
    s = smtplib.SMTP("127.0.0.1", port, timeout=scaled(20))
    s.ehlo("kept.example")
    for n in (128, 2, 128):
        relay_conf(world, lines=lines + ["workers %d" % n])
        before = len(d.log_grep(r"event=reload result=applied"))
        d.send_signal(signal.SIGHUP)
        wait_for(lambda: len(d.log_grep(r"event=reload result=applied"))
                 > before, scaled(10), "the reload")
        known |= set(d.wait_workers(n, timeout=scaled(60), exclude=known))
    assert s.sendmail("a@example.com", ["b@example.net"],
                      "Subject: kept\r\n\r\nx\r\n") == {}
    s.quit()
    with smtplib.SMTP("127.0.0.1", port, timeout=scaled(20)) as c:
        assert c.sendmail("a@example.com", ["b@example.net"],
                          "Subject: new\r\n\r\nx\r\n") == {}
    up.wait_messages(2)
    assert d.relay_pid() == relay
    assert not d.log_grep(r"child-died|Bad message")

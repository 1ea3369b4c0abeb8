"""Session id tags with more living workers than tags (SPEC 9: no two
sessions share an id): workers 256 and max-sessions 1, and a session
kept on every worker across four reloads, leave 1024 retired workers
draining, which hold every one of the 1024 tags.  The 256 of the fifth
pool must still each have a tag of its own, one that only a draining
worker (which opens no session) shares.

The tag is the low 10 bits of a session id (smtpd.8, LOGGING), read
from each worker's connect line.  Clients: plain sockets on loopback
(exempt from max-sessions-per-ip), one per worker: a full worker stops
accepting, so the next connection goes to another.

The daemon starts with a soft descriptor limit of 1024, as systemd
gives a service: the parent's socket pairs to 1280 workers need more,
and it raises its own (a socketpair() that failed at a reload ended
the daemon).
"""
import resource
import signal
import socket

import pytest

from harness import free_port, scaled
from relay_harness import relay_factory, upstream_factory, world  # noqa
from relay_harness import relay_conf

WORKERS = 256
RELOADS = 4
TAG_BITS = 10


def greeted(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=scaled(30))
    b = b""
    while b"\r\n" not in b:
        c = s.recv(512)
        assert c, "closed before a greeting"
        b += c
    assert b.startswith(b"220 "), b
    return s


def test_tags_with_more_workers_than_tags(relay_factory, world):
    port = free_port()
    conf, _ = relay_conf(world, lines=["listen on 127.0.0.1 port %d" % port,
                                       "workers %d" % WORKERS,
                                       "max-sessions 1"])
    d = relay_factory("-f", conf, "-c", "relay", listen="", wait=False,
                      workers=None)
    d.port = port
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * WORKERS * (RELOADS + 1) + 256
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip("a hard descriptor limit of %d is too low" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        d.start(timeout=scaled(60))
    finally:
        # The test itself holds a socket to each worker.
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    pools = [set(d.wait_workers(WORKERS, timeout=scaled(60)))]
    socks = []
    try:
        for _ in range(RELOADS):
            socks += [greeted(port) for _ in range(WORKERS)]
            d.send_signal(signal.SIGHUP)
            known = set().union(*pools)
            pools.append(set(d.wait_workers(WORKERS, timeout=scaled(60),
                                            exclude=known)))
        socks += [greeted(port) for _ in range(WORKERS)]
        assert len(d.sessions()) == WORKERS * (RELOADS + 1)
        tags = {}
        for m in d.log_grep(r"^smtpd\[(\d+)\]: session: event=connect "
                            r"session=([0-9a-f]{16}) "):
            tag = int(m.group(2), 16) & ((1 << TAG_BITS) - 1)
            tags.setdefault(int(m.group(1)), set()).add(tag)
        assert set(tags) == set().union(*pools)
        assert all(len(t) == 1 for t in tags.values())
        last = [tags[p].pop() for p in pools[-1]]
        assert len(set(last)) == WORKERS, sorted(last)
    finally:
        for s in socks:
            s.close()

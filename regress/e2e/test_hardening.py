"""Issue 9 (items 1, 6, 7, 10): per-address session counts that hold
across resets and workers, bounds on open transactions and on session
life, and the smaller protocol and logging fixes.  A client whose
address matters connects from a network namespace (loopback is exempt
from per-address limits)."""
import re

import pytest

from harness import Client, SMTPError, check, scaled, sigstop, wait_for
from relay_harness import (IS_ROOT, netns, relay_conf,  # noqa: F401
                           relay_factory, upstream_factory, world)

# The fixtures above (netns, relay_factory, upstream_factory, world) are
# imported so that pytest finds them in this module.


def held_from(netns, d, limit):
    """How many sessions the namespace's address can still open (at most
    limit + 1 tried): every one greeted is held open until the end."""
    got = []
    try:
        for _ in range(limit + 1):
            c = netns.client(d.port)
            r = c.reply()
            if r.code != 220:
                c.close()
                return got, r
            got.append(c)
        return got, None
    except Exception:
        for c in got:
            c.close()
        raise


def close_all(clients):
    for c in clients:
        c.close()


def test_reset_at_accept_releases_the_address_count(world, relay_factory,
                                                    netns):
    """Item 1: connections reset before their 220 went out (the worker
    stopped while they came and went) release their address's count:
    after ten of them, max-sessions-per-ip 3 still lets 3 sessions in.
    Before, each one leaked a count (and the worker wrote into the
    freed session), so the next connection got 421."""
    conf, _ = relay_conf(world, lines=["max-sessions-per-ip 3"])
    d = relay_factory("-f", conf, host=netns.host_ip, workers=1)
    [worker] = d.wait_workers(1)
    sigstop(worker)
    try:
        for _ in range(10):
            netns.reset_connection(d.port)
    finally:
        import os
        import signal
        os.kill(worker, signal.SIGCONT)
    ip = re.escape(netns.ns_ip)
    # Each one is either a session that ended or a refusal.
    d.wait_log(r"event=(disconnect session=\S+|refused) client=%s " % ip,
               count=10)
    clients, refused = held_from(netns, d, 3)
    try:
        assert refused is not None and refused.code == 421, refused
        assert len(clients) == 3, "only %d of 3 sessions after 10 resets" \
            % len(clients)
    finally:
        close_all(clients)

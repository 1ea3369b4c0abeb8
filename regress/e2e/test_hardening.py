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


def cont(pid):
    import os
    import signal
    os.kill(pid, signal.SIGCONT)


def greeted(c):
    r = c.reply()
    return r.code == 220


def test_sessions_per_ip_count_across_workers(world, relay_factory, netns):
    """Item 6: max-sessions-per-ip 3 with 2 workers: 3 sessions on one
    worker, then the other worker (the first one stopped meanwhile, so
    the kernel hands it the connection) refuses the 4th with 421; once
    one session ends, a new one is greeted.  Before, each worker
    counted its own: 6 sessions from one address."""
    conf, _ = relay_conf(world, lines=["max-sessions-per-ip 3"])
    d = relay_factory("-f", conf, host=netns.host_ip, workers=2)
    a, b = d.wait_workers(2)
    held = []
    try:
        sigstop(b)
        try:
            for _ in range(3):
                c = netns.client(d.port)
                held.append(c)
                assert greeted(c)
        finally:
            cont(b)
        sigstop(a)
        try:
            c = netns.client(d.port)
            r = c.reply()
            c.close()
        finally:
            cont(a)
        check(r, 421, None, None, what="4th session from one address")
        assert "too many connections from your address" in r.text
        held.pop().close()

        def again():
            c = netns.client(d.port)
            if greeted(c):
                return c
            c.close()
            return None
        held.append(wait_for(again, scaled(5), "a session after one ended",
                             interval=0.05))
    finally:
        close_all(held)


def test_dead_worker_gives_its_slots_back(world, relay_factory, netns):
    """Item 6: a worker killed while it held every slot of an address
    leaves none held: the address gets sessions again at once."""
    import os
    import signal
    conf, _ = relay_conf(world, lines=["max-sessions-per-ip 2"])
    d = relay_factory("-f", conf, host=netns.host_ip, workers=2)
    d.allow_child_death = True
    a, b = d.wait_workers(2)
    held = []
    try:
        sigstop(b)
        try:
            for _ in range(2):
                c = netns.client(d.port)
                held.append(c)
                assert greeted(c)
        finally:
            cont(b)
        os.kill(a, signal.SIGKILL)
        d.wait_log(r"event=child-died role=session pid=%d " % a)
        close_all(held)
        held = []
        for _ in range(2):
            c = netns.client(d.port)
            held.append(c)
            assert greeted(c)
    finally:
        close_all(held)


def start_data(d, lines=()):
    """A session on loopback that is inside DATA (354 seen)."""
    c = d.client()
    c.ehlo()
    c.expect("MAIL FROM:<a@example.com>", 250, "2.1.0")
    c.expect("RCPT TO:<b@example.com>", 250, "2.1.5")
    for l in lines:
        c.expect(l, 250, "any")
    return c


def test_max_spool_pending_refuses_data_with_452(world, relay_factory):
    """Item 7: two transfers of 600 KiB held open exceed
    max-spool-pending 1M: a new DATA gets 452 4.3.1 (counted by the
    relay from the spool files' sizes); once one of them ends, DATA
    is accepted again."""
    conf, _ = relay_conf(world, lines=["max-spool-pending 1M"])
    d = relay_factory("-f", conf)
    line = b"x" * 998 + b"\r\n"
    open_ones = []
    try:
        for _ in range(2):
            c = start_data(d)
            c.expect("DATA", 354, None)
            c.send(line * 600)
            open_ones.append(c)

        def refused():
            c = start_data(d)
            r = c.cmd("DATA")
            c.close()
            return r if r.code != 354 else None
        r = wait_for(refused, scaled(10), "452 at DATA", interval=0.1)
        check(r, 452, "4.3.1", None, what="DATA over max-spool-pending")
        d.wait_log(r"relay: event=spool-full ")
        c = open_ones.pop()
        c.send(b".\r\n")
        check(c.reply(), 250, "2.0.0", None, what="end of data")
        c.close()
        c = start_data(d)
        c.expect("DATA", 354, None)
        c.close()
    finally:
        close_all(open_ones)


def test_trickling_data_is_closed(world, relay_factory):
    """Item 7: after data-rate-grace (1s here; 60s by default) a DATA
    must average data-rate-min (1K a second): a client trickling ten
    bytes every 0.2 s gets 421 4.4.2 and is closed."""
    conf, _ = relay_conf(world, lines=["data-rate-grace 1s",
                                       "data-rate-min 1K"])
    d = relay_factory("-f", conf)
    c = start_data(d)
    c.expect("DATA", 354, None)
    import time
    deadline = time.monotonic() + scaled(10)
    r = None
    while time.monotonic() < deadline:
        try:
            c.send(b"0123456789")
            r = c.reply(timeout=0.2)
            break
        except SMTPError:
            continue
    check(r, 421, "4.4.2", None, what="slow DATA")
    assert "data rate too low" in r.text
    assert c.wait_closed()
    d.wait_log(r"session: event=data-too-slow session=\S+ client=127")
    c.close()


def test_fast_enough_data_is_not_closed(world, relay_factory):
    """Item 7: a transfer that keeps above the floor past the grace is
    accepted (the floor is an average, checked as time goes)."""
    conf, _ = relay_conf(world, lines=["data-rate-grace 1s",
                                       "data-rate-min 1K"])
    d = relay_factory("-f", conf)
    c = start_data(d)
    c.expect("DATA", 354, None)
    import time
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.5:
        c.send(b"y" * 598 + b"\r\n")
        time.sleep(0.1)
    c.send(b".\r\n")
    check(c.reply(), 250, "2.0.0", None, what="end of data")
    c.close()


def test_session_lifetime_closes_the_session(world, relay_factory):
    """Item 7: session-lifetime 2s: a session that keeps talking (NOOP
    twice a second, never idle) still gets 421 4.4.2 and is closed."""
    conf, _ = relay_conf(world, lines=["session-lifetime 2s"])
    d = relay_factory("-f", conf)
    c = d.client()
    c.ehlo()
    import time
    t0 = time.monotonic()
    r = None
    while time.monotonic() - t0 < scaled(10):
        r = c.cmd("NOOP")
        if r.code != 250:
            break
        time.sleep(0.3)
    check(r, 421, "4.4.2", None, what="NOOP past the lifetime")
    assert "session lifetime exceeded" in r.text
    assert 1.5 < time.monotonic() - t0 < scaled(5)
    assert c.wait_closed()
    d.wait_log(r"session: event=lifetime session=\S+ client=127")
    c.close()


def test_quoted_local_part_stays_in_one_log_value(world, relay_factory):
    """Item 10a: the sender "a client=1.2.3.4"@example.net is logged as
    one quoted from= value; no second client= field can be read."""
    conf, _ = relay_conf(world)
    d = relay_factory("-f", conf)
    c = d.client()
    c.ehlo()
    c.send_message(b"Subject: q\r\n\r\nx\r\n",
                   sender='"a client=1.2.3.4"@example.net')
    c.close()
    [m] = d.wait_log(r"relay: event=message .*")
    line = m.group(0)
    assert r'from="<\"a client=1.2.3.4\"@example.net>"' in line, line
    outside = re.sub(r'"(?:[^"\\]|\\.)*"', '""', line)
    assert outside.count("client=") == 1, line


BIDI_HELOS = ["a\u202eb.example", "x\u2066y.example"]


@pytest.mark.parametrize("helo", [h.encode() for h in BIDI_HELOS] +
                         [b"\xff\xfe.example", b"\xc0\xafoverlong.example",
                          b"\xed\xa0\x80surrogate.example"])
def test_helo_bad_utf8_or_bidi_refused(world, relay_factory, helo):
    """Item 10b: under SMTPUTF8 an EHLO name that is not UTF-8, or
    holds a bidi control, is refused with 501 and never logged; a
    well-formed UTF-8 name still passes."""
    conf, _ = relay_conf(world, lines=["smtputf8 yes"])
    d = relay_factory("-f", conf)
    c = d.client()
    r = c.cmd(b"EHLO " + helo)
    check(r, 501, None, None, what="EHLO with bad UTF-8")
    c.expect("HELO " + "\u00fcn\u00efcode.example", 250, None)
    c.send_message(b"Subject: u\r\n\r\nx\r\n", esmtp=False)
    c.close()
    d.wait_log(r"relay: event=message ")
    with open(d.err_path, "rb") as f:
        err = f.read()
    assert helo not in err
    assert b"\xe2\x80\xae" not in err and b"\xe2\x81\xa6" not in err
    assert b"\xc3\xbcn\xc3\xafcode.example" not in err  # 8-bit: escaped
    assert rb'helo="\xC3\xBCn\xC3\xAFcode.example"' in err


def test_relay_denials_count_towards_the_error_limit(world, relay_factory,
                                                     upstream_factory):
    """Item 10c: 550 5.7.1 relay denials count as errors: the 20th
    (max bad commands) is followed by 421 and the close.  Before, 5,000
    of them went through in one session."""
    up = upstream_factory()
    conf, _ = relay_conf(world, lines=["relay-domains example.org"])
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    c = d.client()
    c.ehlo()
    c.expect("MAIL FROM:<a@example.com>", 250, "2.1.0")
    for i in range(19):
        c.expect("RCPT TO:<u%d@elsewhere.example>" % i, 550, "5.7.1")
    c.send(b"RCPT TO:<last@elsewhere.example>\r\n")
    check(c.reply(), 550, "5.7.1", None, what="20th denial")
    r = c.reply()
    check(r, 421, "4.7.0", None, what="after 20 errors")
    assert c.wait_closed()
    c.close()


def test_postmaster_always_accepted(world, relay_factory, upstream_factory):
    """Item 10e: RCPT TO:<postmaster> (bare, RFC 5321 4.5.1) and
    postmaster@<our hostname> are accepted in relay mode although
    neither is in relay-domains, and forwarded upstream as given (the
    relay's own check of the envelope accepts them too)."""
    from harness import HOSTNAME
    up = upstream_factory()
    conf, _ = relay_conf(world, lines=["relay-domains example.org"])
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    c = d.client()
    c.ehlo()
    c.expect("MAIL FROM:<a@example.com>", 250, "2.1.0")
    c.expect("RCPT TO:<Postmaster>", 250, "2.1.5")
    c.expect("RCPT TO:<postmaster@%s>" % HOSTNAME, 250, "2.1.5")
    c.expect("RCPT TO:<other@elsewhere.example>", 550, "5.7.1")
    c.expect("DATA", 354, None)
    c.send(b"Subject: pm\r\n\r\nhello\r\n.\r\n")
    check(c.reply(), 250, "2.0.0", None, what="end of data")
    c.close()
    [rec] = up.wait_messages(1)
    assert rec["rcpts"] == ["Postmaster", "postmaster@" + HOSTNAME], rec

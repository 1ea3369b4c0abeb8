"""relay mode durability (SPEC sections 1 and 7): a message answered 250
is on disk; kill -9 of the relay loses none of them; an unreachable
upstream keeps messages queued until it answers; a stopped daemon
finds its queue again at start."""
import os
import signal
import smtplib
import threading
import time

from harness import WaitTimeout, alive, free_port, scaled, wait_for
from relay_harness import (make_message, message_id, queue_files,  # noqa
                           relay_conf, relay_factory, smtp_send,
                           split_received, upstream_factory, with_x_peer,
                           world)

# relay_factory, upstream_factory and world are fixtures, imported so
# that pytest finds them in this module.


class Sender:
    """THREADS smtplib clients, each on its own connection, sending
    messages 0..n-1 between them; records the Message-IDs answered 250.
    A message that failed (the relay died under it) is tried again, at
    most 5 times, on a new connection."""

    THREADS = 8

    def __init__(self, port, n, tag, deadline):
        self.port = port
        self.n = n
        self.tag = tag
        self.deadline = deadline
        self.lock = threading.Lock()
        self.next = 0
        self.accepted = set()
        self.qids = {}
        self.failures = []
        self.threads = [threading.Thread(target=self.run, daemon=True)
                        for _ in range(self.THREADS)]

    def take(self):
        with self.lock:
            if self.next >= self.n or time.monotonic() > self.deadline:
                return None
            self.next += 1
            return self.next - 1

    def run(self):
        s = None
        for _ in range(self.n + 1):
            i = self.take()
            if i is None:
                break
            data = make_message(i, self.tag)
            for attempt in range(5):
                if time.monotonic() > self.deadline:
                    break
                try:
                    if s is None:
                        s = smtplib.SMTP("127.0.0.1", self.port,
                                         timeout=scaled(10))
                        s.ehlo("load.example")
                    code, text = s.mail("sender@example.com")
                    if code != 250:
                        raise smtplib.SMTPSenderRefused(code, text, "")
                    code, text = s.rcpt("rcpt@example.net")
                    if code != 250:
                        raise smtplib.SMTPRecipientsRefused({})
                    code, text = s.data(data)
                    if code != 250:
                        raise smtplib.SMTPDataError(code, text)
                except (smtplib.SMTPException, OSError) as e:
                    with self.lock:
                        self.failures.append((i, repr(e)))
                    try:
                        s.close()
                    except (AttributeError, OSError):
                        pass
                    s = None
                    time.sleep(0.05)
                    continue
                with self.lock:
                    self.accepted.add(message_id(data))
                    self.qids[message_id(data)] = text.decode().split()[-1]
                break
        if s is not None:
            try:
                s.quit()
            except (smtplib.SMTPException, OSError):
                s.close()

    def start(self):
        for t in self.threads:
            t.start()

    def count(self):
        with self.lock:
            return len(self.accepted)

    def join(self):
        for t in self.threads:
            t.join(max(0.1, self.deadline - time.monotonic() + 15))
        assert not any(t.is_alive() for t in self.threads), \
            "sender threads still running"


def arrived_ids(up):
    return {message_id(split_received(m["data"])[1]) for m in up.messages()}


def test_kill_relay_under_load_loses_nothing(world, upstream_factory,
                                             relay_factory):
    """2000 messages from 8 clients; kill -9 of the relay process when
    about a third were accepted; every message answered 250 arrives at
    the upstream (duplicates allowed, losses not)."""
    n = 2000
    t0 = time.monotonic()
    up = upstream_factory()
    conf, queue = relay_conf(world, lines=["queue-retry 1s"])
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    d.allow_child_death = True
    relay = wait_for(d.relay_pid, scaled(5), "the relay process")
    sender = Sender(d.port, n, "load", t0 + scaled(50))
    sender.start()
    wait_for(lambda: sender.count() >= 600, scaled(30),
             "600 accepted messages", interval=0.005)
    os.kill(relay, signal.SIGKILL)
    killed_at = sender.count()
    new = wait_for(lambda: (lambda p: p if p and p != relay else None)(
        d.relay_pid()), scaled(10), "a new relay process")
    assert new != relay
    sender.join()
    accepted = set(sender.accepted)
    assert killed_at < n
    assert len(accepted) > killed_at, "nothing accepted after the kill"
    # All that was answered 250 arrives.
    try:
        wait_for(lambda: accepted <= arrived_ids(up), scaled(60),
                 "every accepted message at the upstream", interval=0.25)
    except WaitTimeout:
        pass
    missing = accepted - arrived_ids(up)
    if missing:
        some = sorted(missing)[:5]
        qids = [sender.qids[m] for m in some]
        lines = [l for l in d.log_lines() if any(q in l for q in qids)]
        raise AssertionError(
            "%d of %d accepted messages not at the upstream after 60s "
            "(relay %d killed at %d accepted); e.g. %s, queue ids %s; "
            "their log:\n%s\nlog tail:\n%s" % (
                len(missing), len(accepted), relay, killed_at, some, qids,
                "\n".join(lines), "\n".join(d.log_lines()[-40:])))
    d.wait_log(r"event=child-died role=relay pid=%d signal=9" % relay)
    # The new relay found on disk what the old one had not sent yet.
    d.wait_log(r"^smtpd\[%d\]: relay: event=queue-loaded messages=\d+$"
               % new)
    # The run is bounded in time.
    assert time.monotonic() - t0 < scaled(90)
    # Nearly all messages got through on the first try.
    assert len(accepted) >= n - 100, (len(accepted), sender.failures[:5])
    # Every arrived message is one we sent, intact.
    sample = up.messages()[:20] + up.messages()[-20:]
    for m in sample:
        _, rest = split_received(m["data"])
        i = int(message_id(rest).split("-")[1].split("@")[0])
        assert rest == with_x_peer(make_message(i, "load"), "127.0.0.1")
    # The queue drains.
    wait_for(lambda: queue_files(queue) == [], scaled(30),
             "an empty queue", interval=0.1)


def test_upstream_down_then_up(world, upstream_factory, relay_factory):
    """The upstream does not answer: messages are accepted, queued (files
    in DIR/queue), the relay probes once per queue-retry; when the
    upstream starts, everything goes at once."""
    up = upstream_factory(port=free_port(), start=False)
    conf, queue = relay_conf(world, lines=["queue-retry 2s",
                                           "queue-lifetime 5m"])
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    ids = []
    for i in range(5):
        ids.append(smtp_send(d.port, "sender@example.com",
                             ["rcpt@example.net"], make_message(i, "down")))
    for q in ids:
        d.wait_log(r"relay: event=queued queue_id=%s$" % q)
    d.wait_log(r"relay: event=upstream-unreachable upstream=127\.0\.0\.1:%d"
               % up.port)
    t_first = time.monotonic()
    files = queue_files(queue)
    for q in ids:
        assert any(q in f for f in files), (q, files)
    # It probes again after queue-retry: one probe per 2s, not one per
    # message.
    d.wait_log(r"relay: event=upstream-unreachable ", count=2,
               timeout=scaled(10))
    n_unreach = len(d.log_grep(r"event=upstream-unreachable "))
    assert n_unreach <= 2 + (time.monotonic() - t_first) / 2, n_unreach
    assert not d.log_grep(r"result=delivered")
    up.start()
    t_up = time.monotonic()
    msgs = up.wait_messages(5, timeout=scaled(60))
    took = time.monotonic() - t_up
    assert took < scaled(10), "delivery took %.1fs with queue-retry 2s" % took
    got = sorted(message_id(split_received(m["data"])[1]) for m in msgs)
    assert got == sorted("down-%d@test.example" % i for i in range(5))
    d.wait_log(r"relay: event=upstream-reachable")
    for q in ids:
        d.wait_log(r"relay: event=removed queue_id=%s$" % q)
    assert queue_files(queue) == []
    assert len(up.messages()) == 5


def test_restart_with_a_full_queue(world, upstream_factory, relay_factory):
    """SIGTERM with the upstream down and messages queued; the next start
    (upstream up) loads the queue and delivers every message."""
    up = upstream_factory(port=free_port(), start=False)
    conf, queue = relay_conf(world, lines=["queue-retry 30s"])
    d1 = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    n = 7
    ids = [smtp_send(d1.port, "sender@example.com",
                     ["rcpt%d@example.net" % i, "other@example.net"],
                     make_message(i, "restart")) for i in range(n)]
    for q in ids:
        d1.wait_log(r"relay: event=queued queue_id=%s$" % q)
    assert d1.stop() == 0
    assert not alive(d1.pid)
    files = queue_files(queue)
    for q in ids:
        assert any(q in f for f in files), (q, files)
    up.start()
    d2 = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    d2.wait_log(r"relay: event=queue-loaded messages=%d$" % n)
    msgs = up.wait_messages(n, timeout=scaled(30))
    assert len(msgs) == n
    byid = {message_id(split_received(m["data"])[1]): m for m in msgs}
    for i in range(n):
        m = byid["restart-%d@test.example" % i]
        assert m["rcpts"] == ["rcpt%d@example.net" % i, "other@example.net"]
        assert m["sender"] == "sender@example.com"
        received, rest = split_received(m["data"])
        assert received.group("qid").decode() == ids[i]
        assert rest == with_x_peer(make_message(i, "restart"), "127.0.0.1")
    for q in ids:
        d2.wait_log(r"relay: event=removed queue_id=%s$" % q)
    assert queue_files(queue) == []
    assert len(up.messages()) == n


def test_smtp_source_kill_relay(world, upstream_factory, relay_factory):
    """Postfix's smtp-source sends 2000 messages (-A: it goes on past
    the 451s of the sessions that were in the middle of a message when
    the relay died); kill -9 of the relay after 600 were queued.  Every
    message the relay queued, which includes every one answered 250,
    arrives upstream: the Received: header names its queue id."""
    import re
    import shutil
    import subprocess
    source = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    if not os.access(source, os.X_OK):
        from harness import missing
        missing("no smtp-source (Debian package postfix)")
    n = 2000
    up = upstream_factory()
    conf, queue = relay_conf(world, lines=["queue-retry 1s"])
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    d.allow_child_death = True
    relay = wait_for(d.relay_pid, scaled(5), "the relay process")
    p = subprocess.Popen([source, "-A", "-N", "-s", "8", "-m", str(n),
                          "-l", "512", "-f", "sender@example.com",
                          "-t", "rcpt@example.com",
                          "127.0.0.1:%d" % d.port],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        d.wait_log(r"event=queued queue_id=", count=600,
                   timeout=scaled(30))
        os.kill(relay, signal.SIGKILL)
        p.wait(timeout=scaled(60))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    rx = re.compile(r"event=queued queue_id=([0-9A-F]{16})")
    queued = {m.group(1) for m in (rx.search(l) for l in d.log_lines())
              if m}
    assert len(queued) > 600
    idrx = re.compile(rb"\) with E?SMTP id ([0-9A-F]{16})")

    def arrived():
        out = set()
        for m in up.messages():
            hit = idrx.search(m["data"][:400])
            if hit:
                out.add(hit.group(1).decode())
        return out
    wait_for(lambda: queued <= arrived(), scaled(60),
             "every queued message at the upstream", interval=0.25)
    d.wait_log(r"event=child-died role=relay pid=%d signal=9" % relay)
    wait_for(lambda: queue_files(queue) == [], scaled(30),
             "an empty queue", interval=0.1)

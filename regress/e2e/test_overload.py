"""A full worker steps aside: its connections go to the workers with
room, and only when every worker is full are clients turned away with
421 (SPEC section 8: overloaded -> 421)."""
import os

from harness import Client, scaled, wait_for


def conf(tmp_path, text):
    path = os.path.join(str(tmp_path), "smtpd.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


def open_clients(d, n):
    out = []
    for _ in range(n):
        c = Client(d.port)
        d.clients.append(c)
        out.append(c)
    return out


def test_full_worker_leaves_connections_to_others(smtpd_factory, tmp_path):
    path = conf(tmp_path, "max-sessions 3\n")
    d = smtpd_factory("-f", path, workers=2)
    d.wait_workers(2)
    # 6 sessions fit in 2 workers of 3 each, however the kernel deals.
    clients = open_clients(d, 6)
    for c in clients:
        r = c.reply(scaled(5))
        assert r.code == 220, r.raw
    assert not d.log_grep(r"event=refused")
    # Both workers hold sessions.
    workers = {d.worker_of(c) for c in clients}
    assert len(workers) == 2, workers
    # The 7th finds every worker full: 421, after the pause.
    extra = open_clients(d, 1)[0]
    r = extra.reply(scaled(5))
    assert r.code == 421 and r.enh == "4.3.2", r.raw
    assert extra.wait_closed()
    for c in clients:
        c.expect("NOOP", 250, None)


def quit_all(d, clients, ndisconnects):
    for c in clients:
        c.expect("QUIT", 221, None)
    wait_for(lambda: len(d.log_grep(r"session: event=disconnect ")) >=
             ndisconnects, scaled(5), "%d disconnects" % ndisconnects)


def test_sessions_pack_in_the_first_worker(smtpd_factory, tmp_path):
    """An empty worker of a slot other than 0 leaves new connections to
    the worker of slot 0: sessions pack in one worker while it keeps up
    (fewer wake-ups per message), even when the kernel offers the
    connection to the other one first."""
    path = conf(tmp_path, "max-sessions 2\n")
    d = smtpd_factory("-f", path, workers=2)
    d.wait_workers(2)
    # Slots are spawned in order: the first session worker is slot 0.
    spawned = [int(m.group(1)) for m in
               d.log_grep(r"event=spawn role=session pid=(\d+)$")]
    assert len(spawned) == 2, spawned
    first = spawned[0]
    # Fill both workers, then let the worker of slot 1 listen again
    # first: the kernel wakes the listening workers in the order they
    # began to listen, so slot 1 is offered the next connection first.
    clients = open_clients(d, 4)
    for c in clients:
        assert c.reply(scaled(5)).code == 220
    by = {}
    for c in clients:
        by.setdefault(d.worker_of(c), []).append(c)
    assert sorted(len(v) for v in by.values()) == [2, 2], by
    others = [p for p in by if p != first]
    quit_all(d, by[others[0]], 2)
    quit_all(d, by[first], 4)
    # One at a time: at most the first goes to slot 1 (after its wait:
    # no other connection woke slot 0), the others all to slot 0.
    got = []
    for i in range(5):
        c = open_clients(d, 1)[0]
        assert c.reply(scaled(5)).code == 220
        got.append(d.worker_of(c))
        quit_all(d, [c], 5 + i)
    assert got[1:] == [first] * 4, (first, got)

"""A full worker steps aside: its connections go to the workers with
room, and only when every worker is full are clients turned away with
421 (SPEC section 8: overloaded -> 421)."""
import os

from harness import Client, scaled


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

"""Queue format 3 (issue 13): a group commit renames its messages into
queue/ (the envelope as ID.new) before the one syncfs that makes them
durable, and a check line in the envelope tells a restart whether an
ID.new was committed.  A whole one is delivered; one whose bytes never
reached the disk (an earlier message's bytes in a reused file, a torn
envelope) was never answered 250 and is set aside without a DSN; a
settled ID.env whose marks were rewritten since is delivered as marked;
a relay killed in the middle of a group's sync loses nothing."""
import os
import time

from harness import scaled, wait_for
from relay_harness import (IS_ROOT, make_message, message_id,  # noqa
                           queue_files, relay_conf, relay_factory,
                           split_received, upstream_factory, with_x_peer,
                           world)
from strace_tool import needs_strace, strace_stop
from test_queue_pool import (RCPT, SENDER, arrived, relay_killed_on,  # noqa
                             send, wait_empty)

MASK = (1 << 64) - 1


def fnv1a(data, h=0xcbf29ce484222325):
    """64-bit FNV-1a, as smtpd.8 (FILES) gives it for the check line."""
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & MASK
    return h


def envelope(qid, body, rcpts, marks):
    """A format 3 envelope of body to rcpts, as smtpd.8 describes it."""
    head = ("version 2\nid %s\ncreated %d\nnext-try 0\nattempts 0\n"
            "client 192.0.2.7\nclient-port 2525\nhelo client.example\n"
            "from %s\nsize %d\nflags 4\nbounce 0\n" %
            (qid, int(time.time()), SENDER, len(body)))
    for r in rcpts:
        head += "rcpt-P %s\ncode 0\ntext %%00\nbounced 0\n" % r
    tail = "marks %s\nend\n" % marks
    m = "%016x" % fnv1a(body)
    e = fnv1a((head + m + tail).encode())
    return (head + "check %016x %s\n" % (e, m) + tail).encode()


def put(path, data):
    with open(path, "wb") as f:
        f.write(data)


def dsns(up):
    return [m for m in up.messages() if m["sender"] == ""]


def test_restart_settles_or_sets_aside_group_files(world, upstream_factory,
                                                   relay_factory):
    """Files placed before the start as a crash in a group commit would
    leave them: the whole ID.new is delivered byte for byte and logged
    as settled; one whose message file holds other bytes of the same
    size, one with a torn envelope and one whose marks are not those it
    was committed with are set aside in queue/corrupt/ as uncommitted,
    with no DSN; a settled ID.env with a mark rewritten goes only to its
    pending recipient; a file of data/ that no envelope names is
    removed.  Nothing is left in queue/."""
    up = upstream_factory()
    conf, queue = relay_conf(world, lines=["queue-retry 1s"])
    qd = os.path.join(queue, "queue")
    os.makedirs(qd)
    bodies = {}
    for qid in ("00000000000000A1", "00000000000000A2", "00000000000000A3",
                "00000000000000A4", "00000000000000A5"):
        bodies[qid] = make_message(int(qid[-1]), "fmt3")
        put(os.path.join(qd, qid), bodies[qid])
    other = "other@example.net"
    put(os.path.join(qd, "00000000000000A1.new"),
        envelope("00000000000000A1", bodies["00000000000000A1"], [RCPT], "P"))
    # The message file holds an earlier message's bytes, same length.
    put(os.path.join(qd, "00000000000000A2.new"),
        envelope("00000000000000A2", bodies["00000000000000A2"], [RCPT], "P"))
    stale = bytearray(bodies["00000000000000A2"])
    stale[-5:-2] = b"old"
    put(os.path.join(qd, "00000000000000A2"), bytes(stale))
    # A torn envelope: one byte of another's.
    env = bytearray(envelope("00000000000000A3", bodies["00000000000000A3"],
                             [RCPT], "P"))
    env[env.index(b"helo ") + 5] ^= 0x20
    put(os.path.join(qd, "00000000000000A3.new"), bytes(env))
    # An ID.new whose mark is not the one it was committed with.
    env = envelope("00000000000000A4", bodies["00000000000000A4"], [RCPT],
                   "P").replace(b"marks P\n", b"marks D\n")
    put(os.path.join(qd, "00000000000000A4.new"), env)
    # Settled, then a recipient delivered and marked in place.
    env = envelope("00000000000000A5", bodies["00000000000000A5"],
                   [RCPT, other], "PP").replace(b"marks PP\n", b"marks DP\n")
    put(os.path.join(qd, "00000000000000A5.env"), env)

    # A free file in data/ (a crash left it in the pool): no envelope
    # names it, so it goes at the start.
    os.makedirs(os.path.join(queue, "data"))
    put(os.path.join(queue, "data", "00000000000000F1"), b"free\r\n")
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    d.wait_log(r"event=queue-loaded messages=2$")
    d.wait_log(r"event=queue-free-files dir=data removed=1$")
    assert os.listdir(os.path.join(queue, "data")) == []
    d.wait_log(r"event=queue-settled queue_id=00000000000000A1$")
    for qid, why in (("00000000000000A2", "message file does not match"),
                     ("00000000000000A3", "envelope does not match"),
                     ("00000000000000A4", "envelope does not match")):
        d.wait_log(r"event=queue-uncommitted queue_id=%s reason=\"%s its "
                   r"check line\" action=quarantined" % (qid, why))
    up.wait_messages(2, what="the settled and the marked message")
    wait_empty(queue)
    got = {message_id(split_received(m["data"])[1]): m for m in up.messages()}
    a1 = got[message_id(bodies["00000000000000A1"])]
    assert split_received(a1["data"])[1] == with_x_peer(
        bodies["00000000000000A1"], "192.0.2.7")
    a5 = got[message_id(bodies["00000000000000A5"])]
    assert a5["rcpts"] == [other]
    assert len(up.messages()) == 2
    time.sleep(scaled(1.5))     # a DSN would have been queued at start
    assert not dsns(up), dsns(up)
    assert sorted(os.listdir(os.path.join(qd, "corrupt"))) == sorted(
        [q + s for q in ("00000000000000A2", "00000000000000A3",
                         "00000000000000A4") for s in ("", ".new")])
    assert not d.log_grep(r"event=queue-corrupt")


@needs_strace
def test_kill_in_group_sync_loses_nothing(world, upstream_factory,
                                          relay_factory, tmp_path):
    """The relay is killed (SIGKILL, by strace) as it enters a group's
    syncfs: that group's files are in queue/ as ID.new and none of them
    was answered 250.  The next relay finds them whole (the page cache
    still has them: only a crash of the machine loses unsynced bytes),
    settles and delivers them, and every message answered 250 arrives;
    nothing is set aside."""
    import threading
    up, queue, d, relay, p = relay_killed_on(
        world, upstream_factory, relay_factory, tmp_path, "syncfs", 2)
    results = []

    def one(i):
        results.append(send(d.port, 5, "kill%d" % i, timeout=scaled(20)))
    try:
        ts = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    finally:
        strace_stop(p)
    new = wait_for(lambda: (lambda q: q if q and q != relay else None)(
        d.relay_pid()), scaled(10), "a new relay process")
    codes = {}
    for r in results:
        codes.update(r)
    ok = {m for m, c in codes.items() if c == 250}
    d.wait_log(r"event=child-died role=relay pid=%d signal=9" % relay)
    settled = d.wait_log(r"^smtpd\[%d\]: relay: event=queue-settled "
                         r"queue_id=(\w+)$" % new)
    wait_for(lambda: ok <= arrived(up), scaled(30),
             "every accepted message at the upstream")
    wait_empty(queue)
    # Those of the killed group went out too, though never answered.
    for m in settled:
        d.wait_log(r"event=removed queue_id=%s$" % m.group(1))
    assert len(arrived(up)) > len(ok) + 3 - 1
    assert not os.listdir(os.path.join(queue, "queue", "corrupt"))
    assert not d.log_grep(r"event=(queue-corrupt|queue-uncommitted|lost)")

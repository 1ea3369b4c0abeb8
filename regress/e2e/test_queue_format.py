"""Queue formats 3 and 4 (issue 13).  Format 3: a group commit renames its messages into
queue/ (the envelope as ID.new) before the one syncfs that makes them
durable, and a check line in the envelope tells a restart whether an
ID.new was committed.  A whole one is delivered; one whose bytes never
reached the disk (an earlier message's bytes in a reused file, a torn
envelope) was never answered 250 and is set aside without a DSN; a
settled ID.env whose marks were rewritten since is delivered as marked;
a relay killed in the middle of a group's sync loses nothing.  Format 4
(a relay's messages): the envelope follows the message in its own file
and the same check line tells a committed file from one a crash left
half written; a delivered one's footer is overwritten."""
import hashlib
import hmac
import os
import time

from harness import free_port, scaled, wait_for
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


def inline_file(key, qid, name, body, rcpts, marks):
    """A format 4 message file data/NAME: the message, its envelope
    (version 3, a file line, a check line whose first hash is keyed with
    the queue's key and takes every mark as P) and the footer, as
    smtpd.8 (FILES) describes them."""
    head = ("version 3\nid %s\ncreated %d\nnext-try 0\nattempts 0\n"
            "client 192.0.2.7\nclient-port 2525\nhelo client.example\n"
            "from %s\nfile %s\nsize %d\nflags 4\nbounce 0\n" %
            (qid, int(time.time()), SENDER, name, len(body)))
    for r in rcpts:
        head += "rcpt-P %s\ncode 0\ntext %%00\nbounced 0\n" % r
    m = "%016x" % fnv1a(body)
    e = int.from_bytes(hmac.new(key, (head + m + "marks %s\nend\n" % (
        "P" * len(rcpts))).encode(), hashlib.sha256).digest()[:8], "big")
    text = (head + "check %016x %s\n" % (e, m) +
            "marks %s\nend\n" % marks).encode()
    return body + text + b"smtpd-envelope %08x\n" % len(text)


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
    syncfs: that group's envelopes are in their message files in data/
    (queue format 4) and none of them was answered 250.  The next relay
    finds them whole (the page cache still has them: only a crash of
    the machine loses unsynced bytes), loads and delivers them, and
    every message answered 250 arrives; nothing is set aside."""
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
    loaded = d.wait_log(r"^smtpd\[%d\]: relay: event=queue-loaded "
                        r"messages=(\d+)$" % new)
    wait_for(lambda: ok <= arrived(up), scaled(30),
             "every accepted message at the upstream")
    wait_empty(queue)
    # Those of the killed group went out too, though never answered.
    assert int(loaded[0].group(1)) > 0
    assert len(arrived(up)) > len(ok) + 3 - 1
    assert not os.listdir(os.path.join(queue, "queue", "corrupt"))
    assert not d.log_grep(r"event=(queue-corrupt|queue-uncommitted|lost)")


def test_restart_loads_or_sets_aside_inline_files(world, upstream_factory,
                                                  relay_factory):
    """Message files placed in data/ before the start as a relay leaves
    them (queue format 4, the envelope after the message): a whole one
    is delivered byte for byte; one whose marks were rewritten since
    its commit goes only to its pending recipient; one whose message
    bytes are not those it was committed with, one with a torn envelope
    and one whose footer gives a length beyond the file are set aside
    in queue/corrupt/ as uncommitted, with no DSN, and so is one whose
    check line was made without the queue's key; a free file (its
    footer overwritten) is removed; a file named by an envelope in
    queue/ is that envelope's message, whatever its footer says."""
    up = upstream_factory()
    conf, queue = relay_conf(world, lines=["queue-retry 1s"])
    dd = os.path.join(queue, "data")
    os.makedirs(dd)
    os.makedirs(os.path.join(queue, "queue"))
    other = "other@example.net"
    bodies = {n: make_message(n, "fmt4") for n in range(1, 9)}
    names = {n: "00000000000000B%d" % n for n in bodies}
    qids = {n: "00000000000000C%d" % n for n in bodies}

    key = os.urandom(32)
    put(os.path.join(queue, "queue.key"), key)

    def f(n, rcpts=(RCPT,), marks="P", k=key):
        return inline_file(k, qids[n], names[n], bodies[n], list(rcpts),
                           marks)
    put(os.path.join(dd, names[1]), f(1))
    # Made without the queue's key (a worker that wrote an envelope of
    # its own into the file it was given): not a commit.
    put(os.path.join(dd, names[8]), f(8, k=os.urandom(32)))
    put(os.path.join(dd, names[2]), f(2, (RCPT, other), "DP"))
    stale = bytearray(f(3))
    stale[len(bodies[3]) - 5] ^= 0x20        # an earlier message's byte
    put(os.path.join(dd, names[3]), bytes(stale))
    torn = bytearray(f(4))
    torn[torn.index(b"helo ") + 5] ^= 0x20
    put(os.path.join(dd, names[4]), bytes(torn))
    long_ = f(5)
    put(os.path.join(dd, names[5]), long_[:-9] + b"00ffffff\n")
    put(os.path.join(dd, names[6]), f(6)[:-24] + b"\0" * 24)
    # Named by queue/ID.env (format 3): its own footer does not count.
    put(os.path.join(dd, names[7]), f(7, (RCPT, other), "PP"))
    env = envelope(qids[7], bodies[7], [other], "P").replace(
        b"from %s\n" % SENDER.encode(),
        b"from %s\nfile %s\n" % (SENDER.encode(), names[7].encode()))
    put(os.path.join(queue, "queue", qids[7] + ".env"), env)
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    d.wait_log(r"event=queue-loaded messages=3$")
    d.wait_log(r"event=queue-free-files dir=data removed=1$")
    for n, why in ((3, "message file does not match"),
                   (4, "envelope does not match"),
                   (5, "envelope does not match"),
                   (8, "envelope does not match")):
        d.wait_log(r"event=queue-uncommitted file=%s reason=\"%s its "
                   r"check line\" action=quarantined" % (names[n], why))
    up.wait_messages(3, what="the three committed messages")
    wait_empty(queue)
    got = {message_id(split_received(m["data"])[1]): m for m in up.messages()}
    assert split_received(got[message_id(bodies[1])]["data"])[1] == \
        with_x_peer(bodies[1], "192.0.2.7")
    assert got[message_id(bodies[1])]["rcpts"] == [RCPT]
    assert got[message_id(bodies[2])]["rcpts"] == [other]
    assert got[message_id(bodies[7])]["rcpts"] == [other]
    assert split_received(got[message_id(bodies[7])]["data"])[1] == \
        with_x_peer(bodies[7], "192.0.2.7")
    assert len(up.messages()) == 3
    time.sleep(scaled(1.5))     # a DSN would have been queued at start
    assert not dsns(up), dsns(up)
    assert sorted(os.listdir(os.path.join(queue, "queue", "corrupt"))) == \
        sorted(names[n] for n in (3, 4, 5, 8))
    assert not d.log_grep(r"event=queue-corrupt")


def test_delivered_message_leaves_no_envelope(world, upstream_factory,
                                              relay_factory):
    """A relayed message's envelope is in its message file (format 4)
    while it is queued, and nowhere in queue/; once it is delivered the
    file's footer is overwritten, so a restart finds nothing to send
    again (the file stays in data/ for reuse)."""
    up = upstream_factory(port=free_port(), start=False)
    conf, queue = relay_conf(world, lines=["queue-retry 1s"])
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    codes = send(d.port, 1, "inline")
    assert set(codes.values()) == {250}
    files = queue_files(queue)
    assert len(files) == 1 and files[0].startswith("data/"), files
    up.start()
    up.wait_messages(1)
    wait_empty(queue)
    assert os.listdir(os.path.join(queue, "data")) == [files[0][5:]]
    assert d.stop() == 0
    d2 = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    d2.wait_log(r"event=queue-loaded messages=0$")
    time.sleep(scaled(1.5))
    assert len(up.messages()) == 1


def test_missing_key_keeps_the_messages(world, upstream_factory,
                                        relay_factory):
    """queue.key gone while data/ holds messages committed under it:
    the relay refuses the queue and says why, instead of making a new
    key and setting those messages aside; with the key back, the next
    relay delivers them."""
    up = upstream_factory()
    conf, queue = relay_conf(world, lines=["queue-retry 1s"])
    dd = os.path.join(queue, "data")
    os.makedirs(dd)
    key = os.urandom(32)
    body = make_message(1, "nokey")
    put(os.path.join(dd, "00000000000000D1"),
        inline_file(key, "00000000000000E1", "00000000000000D1", body,
                    [RCPT], "P"))
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    d.allow_child_death = True
    d.wait_log(r"relay: queue.key is missing, and data/ holds messages "
               r"whose check needs it")
    assert os.path.exists(os.path.join(dd, "00000000000000D1"))
    assert not os.path.exists(os.path.join(queue, "queue.key"))
    put(os.path.join(queue, "queue.key"), key)
    up.wait_messages(1, what="the message, once the key is back")
    assert split_received(up.messages()[0]["data"])[1] == with_x_peer(
        body, "192.0.2.7")
    wait_empty(queue)

"""The queue's free pool (queue format 2, issue 13): a delivered
message's files are reused instead of unlinked, so the steady state
creates no inode; a queue written by the earlier format is picked up
and delivered; a kill -9 while files are being recycled loses nothing;
and with the commit path's system calls made to fail (strace
-e inject=), no client gets 250 for a message whose commit failed, and
every message answered 250 arrives."""
import os
import smtplib
import time

import pytest

from harness import scaled, wait_for
from relay_harness import (IS_ROOT, make_message, message_id,  # noqa
                           queue_files, relay_conf, relay_factory,
                           split_received, upstream_factory, with_x_peer,
                           world)

from strace_tool import (needs_strace, strace_pid, strace_stop,  # noqa
                         strip_pid)

SENDER = "sender@example.com"
RCPT = "rcpt@example.net"

# The envelope as the releases before the pool wrote it (format 1).
OLD_ENVELOPE = ("version 1\nid %s\ncreated %d\nnext-try 0\nattempts 0\n"
                "client 192.0.2.7\nclient-port 2525\nhelo client.example\n"
                "from %s\nsize %d\nflags 4\nbounce 0\nrcpt-P %s\ncode 0\n"
                "text %%00\nbounced 0\n%send\n")


def send(port, n, tag, timeout=None):
    """Send n messages, one connection each; {message id: code}."""
    codes = {}
    for i in range(n):
        data = make_message(i, tag)
        try:
            with smtplib.SMTP("127.0.0.1", port,
                              timeout=timeout or scaled(10)) as s:
                s.sendmail(SENDER, [RCPT], data)
            codes[message_id(data)] = 250
        except smtplib.SMTPResponseException as e:
            codes[message_id(data)] = e.smtp_code
        except smtplib.SMTPRecipientsRefused as e:
            codes[message_id(data)] = list(e.recipients.values())[0][0]
        except (smtplib.SMTPException, OSError):
            codes[message_id(data)] = 0
    return codes


def arrived(up):
    return {message_id(split_received(m["data"])[1]) for m in up.messages()}


def wait_empty(queue):
    wait_for(lambda: not queue_files(queue), scaled(20), "an empty queue")


def relay_killed_on(world, upstream_factory, relay_factory, tmp_path, call,
                    when):
    """A warm relay (3 messages through, queue empty) that strace kills
    (SIGKILL) on its WHEN-th CALL: (up, queue, d, relay pid, strace)."""
    up = upstream_factory()
    conf, queue = relay_conf(world, lines=["queue-retry 1s"])
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    d.allow_child_death = True
    assert set(send(d.port, 3, "warm").values()) == {250}
    up.wait_messages(3)
    wait_empty(queue)
    relay = d.relay_pid()
    p = strace_relay(d, "-e", "trace=%s" % call, "-e",
                     "inject=%s:signal=SIGKILL:when=%s" % (call, when),
                     out=str(tmp_path / "strace.out"))
    return up, queue, d, relay, p


def test_earlier_queue_format_is_delivered(world, upstream_factory,
                                           relay_factory):
    """A queue left by the earlier release (format 1: an envelope with
    and one without the marks line, a half-delivered one, leftovers in
    tmp/, an orphan message file) is picked up: what was pending is
    delivered byte for byte, nothing twice, and the queue is empty."""
    up = upstream_factory()
    conf, queue = relay_conf(world, lines=["queue-retry 1s"])
    qd, td = os.path.join(queue, "queue"), os.path.join(queue, "tmp")
    os.makedirs(qd)
    os.makedirs(td)
    now = int(time.time())
    bodies = {}
    for n, (qid, marks) in enumerate([("00000000000000A1", ""),
                                      ("00000000000000A2", "marks P\n"),
                                      ("00000000000000A3", "marks D\n")]):
        body = make_message(n, "old")
        bodies[qid] = body
        with open(os.path.join(qd, qid), "wb") as f:
            f.write(body)
        with open(os.path.join(qd, qid + ".env"), "w") as f:
            f.write(OLD_ENVELOPE % (qid, now, SENDER, len(body), RCPT, marks))
    with open(os.path.join(qd, "00000000000000B1"), "wb") as f:
        f.write(b"an orphan: never answered 250\r\n")
    for name in ("00000000000000C1", "00000000000000C1.env"):
        with open(os.path.join(td, name), "wb") as f:
            f.write(b"a spool file of a crashed run\r\n")
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    d.wait_log(r"event=queue-loaded messages=3$")
    up.wait_messages(2, what="the two pending messages")
    wait_empty(queue)
    got = {m: split_received(m_["data"])[1] for m_ in up.messages()
           for m in [message_id(split_received(m_["data"])[1])]}
    assert sorted(got) == sorted(message_id(bodies[q])
                                 for q in ("00000000000000A1",
                                           "00000000000000A2"))
    for q in ("00000000000000A1", "00000000000000A2"):
        assert got[message_id(bodies[q])] == with_x_peer(bodies[q],
                                                         "192.0.2.7")
    assert len(up.messages()) == 2
    assert not os.path.exists(os.path.join(td, "00000000000000C1"))
    # New mail goes through the same queue as well.
    assert set(send(d.port, 3, "new").values()) == {250}
    up.wait_messages(5)


def strace_relay(d, *args, out):
    """strace attached to the relay process of d; the Popen."""
    relay = wait_for(d.relay_pid, scaled(5), "the relay process")
    return strace_pid(relay, *args, out=out)


@needs_strace
def test_steady_state_creates_no_inode(world, upstream_factory,
                                       relay_factory, tmp_path):
    """Once warm, a message creates no file, unlinks none and renames
    none: the relay reuses the delivered message's file, which holds its
    envelope too (queue format 4; strace of the relay shows the files
    opened, and no O_CREAT, unlink or rename while 20 messages go
    through)."""
    up = upstream_factory()
    conf, queue = relay_conf(world)
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr, workers=1)
    for i in range(5):   # warm: the pool holds a message's two files
        assert set(send(d.port, 1, "warm%d" % i).values()) == {250}
        up.wait_messages(i + 1)
        wait_empty(queue)
    out = str(tmp_path / "strace.out")
    p = strace_relay(d, "-e", "trace=openat,unlinkat,unlink,rename,"
                     "renameat,renameat2", out=out)
    try:
        for i in range(20):
            assert set(send(d.port, 1, "steady%d" % i).values()) == {250}
            up.wait_messages(6 + i)
            wait_empty(queue)
    finally:
        strace_stop(p)
    with open(out) as f:
        trace = f.read()
    assert "openat" in trace, trace[:2000]
    creates = [l for l in trace.splitlines() if "O_CREAT" in l]
    unlinks = [l for l in trace.splitlines() if "unlink" in l]
    renames = [l for l in trace.splitlines() if "rename" in l]
    assert not creates and not unlinks and not renames, \
        (creates + unlinks + renames)[:10]


@needs_strace
@pytest.mark.parametrize("when", [1, 2, 3, 5, 8])
def test_kill_while_recycling(world, upstream_factory, relay_factory,
                              tmp_path, when):
    """The relay is killed (SIGKILL, by strace on the Nth pwrite64 it
    makes: an envelope written into its message file, or the footer of
    a delivered one overwritten so that the file can be reused) while
    mail flows; the next relay delivers every message answered 250, the
    queue empties, nothing is quarantined."""
    up, queue, d, relay, p = relay_killed_on(
        world, upstream_factory, relay_factory, tmp_path, "pwrite64", when)
    codes = send(d.port, 12, "kill")
    strace_stop(p)
    wait_for(lambda: (lambda q: q if q and q != relay else None)(
        d.relay_pid()), scaled(10), "a new relay process")
    codes.update(send(d.port, 3, "after"))
    ok = {m for m, c in codes.items() if c == 250}
    assert len(ok) >= 3
    wait_for(lambda: ok <= arrived(up), scaled(30),
             "every accepted message at the upstream")
    wait_empty(queue)
    assert not os.listdir(os.path.join(queue, "queue", "corrupt"))
    assert not d.log_grep(r"event=(queue-corrupt|lost)")


FAULTS = [
    # (system call, when): every commit path call of the relay made to
    # fail, at once and repeatedly.  strace makes a call fail by running
    # another instead: getpid, which the relay's seccomp filter allows
    # (the default, an invalid number, would be killed by it).
    ("fdatasync", "1"), ("fdatasync", "2+3"),
    ("syncfs", "1+2"),
    ("write", "3+5"), ("pwrite64", "1+3"),
    ("openat", "2+3"),
]


def send_with_faults(d, tmp_path, call, when):
    """10 messages to d while strace makes the relay's CALL fail (EIO)
    at the WHEN-th calls; (ids answered 250, ids refused), once it is
    seen that calls did fail (the path was exercised)."""
    d.allow_child_death = True
    out = str(tmp_path / "strace.out")
    p = strace_relay(d, "-e", "trace=%s" % call, "-e",
                     "inject=%s:error=EIO:when=%s:syscall=getpid" %
                     (call, when), out=out)
    try:
        codes = send(d.port, 10, "fault")
    finally:
        strace_stop(p)
    with open(out) as f:
        injected = f.read().count("(INJECTED)")
    assert injected > 0, "nothing injected for %s" % call
    return ({m for m, c in codes.items() if c == 250},
            {m for m, c in codes.items() if c != 250})


@needs_strace
@pytest.mark.parametrize("call,when", FAULTS)
def test_commit_fault_never_answered_250(world, upstream_factory,
                                         relay_factory, tmp_path, call,
                                         when):
    """With CALL failing (EIO, from strace -e inject= on the relay)
    now and again while messages are committed: failures happened, no
    message whose commit failed was answered 250 (each one answered 250
    arrives, and the relay has none left over), and the relay goes on."""
    up = upstream_factory()
    conf, queue = relay_conf(world, lines=["queue-retry 1s"])
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    ok, refused = send_with_faults(d, tmp_path, call, when)
    # ...every 250 arrives, whatever failed...
    wait_for(lambda: ok <= arrived(up), scaled(30),
             "every accepted message at the upstream")
    wait_empty(queue)
    # ...and the failed commits are not in the queue to come out later.
    time.sleep(scaled(1.5))
    assert not (refused & arrived(up)) or call == "write", \
        "a refused message was delivered: %s" % (refused & arrived(up))
    # The relay lived through it: the errors were returned, not fatal.
    assert not d.log_grep(r"event=child-died"), d.log_grep(r"child-died")
    # The relay recovers: new mail is taken and delivered.
    after = send(d.port, 3, "after")
    assert set(after.values()) == {250}, after
    wait_for(lambda: set(after) <= arrived(up), scaled(30),
             "the mail after the faults")


def deliver_setup(world, relay_factory):
    """A deliver-mode smtpd (queue format 3: its program reads the
    message file to its end, so the envelope is in queue/ID.env):
    (d, queue, delivered), delivered() the Message-IDs the program got."""
    from test_deliver import Hook, deliver_conf
    hook = Hook(world)
    conf, queue = deliver_conf(world, hook, "ok", lines=["queue-retry 1s"])
    d = relay_factory("-f", conf)

    def delivered():
        return {message_id(r["stdin"]) for r in hook.runs()}
    return d, queue, delivered


def send_groups(port):
    """40 messages in 8 sessions at once, so that groups form: codes."""
    import threading
    results = []

    def one(i):
        results.append(send(port, 5, "group%d" % i))
    ts = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    codes = {}
    for r in results:
        codes.update(r)
    return codes


@needs_strace
def test_group_commit_links_only_synced_files(world, relay_factory,
                                              tmp_path):
    """Reused files are overwritten in place, so a name a restart takes
    as committed may reach queue/ only after the bytes it names are on
    the disk (queue format 3, deliver mode).  In the relay's system
    calls: a group's envelope goes into queue/ as ID.new (which a
    restart checks against its check line) and becomes ID.env only
    after a syncfs made since; a message alone goes in as ID.env only
    after its fdatasync; and groups did form (40 messages in 8 sessions
    at once)."""
    import re
    d, queue, delivered = deliver_setup(world, relay_factory)
    assert set(send(d.port, 3, "warm").values()) == {250}
    wait_for(lambda: len(delivered()) >= 3, scaled(20), "3 deliveries")
    wait_empty(queue)
    out = str(tmp_path / "strace.out")
    p = strace_relay(d, "-e", "trace=renameat,syncfs,fdatasync,fsync",
                     out=out)
    try:
        codes = send_groups(d.port)
    finally:
        strace_stop(p)
    assert set(codes.values()) == {250}
    wait_for(lambda: set(codes) <= delivered(), scaled(60),
             "every message delivered")
    with open(out) as f:
        calls = [strip_pid(l) for l in f.read().splitlines()
                 if "resumed" not in l]
    rename = re.compile(r'renameat\((\d+), "([^"]+)", (\d+), "([^"]+)"\)')
    # queue/ is the directory the .env names are renamed into.
    qfd = {m.group(3) for m in map(rename.match, calls)
           if m and m.group(4).endswith(".env")}
    assert len(qfd) == 1, qfd
    qfd = qfd.pop()
    synced, linked, durable = False, set(), set()
    settled = groups = 0
    why = "\n".join(calls[:60])
    for l in calls:
        m = rename.match(l)
        if l.startswith("fdatasync("):
            synced = True
        elif l.startswith("fsync("):
            synced = False
        elif l.startswith("syncfs("):
            synced = True
            groups += 1
            durable |= linked
            linked = set()
        elif m and m.group(1) != qfd and m.group(3) == qfd:
            to = m.group(4)
            if to.endswith(".new"):
                linked.add(to[:-4])
            elif to.endswith(".env"):
                assert synced, "ID.env linked before its sync:\n" + why
        elif m and m.group(1) == qfd and m.group(4).endswith(".env"):
            assert m.group(2).endswith(".new"), l
            assert m.group(2)[:-4] in durable, \
                "ID.new settled before a syncfs covered it:\n" + why
            settled += 1
    assert groups > 0 and settled > 0, "no group commit formed"


@needs_strace
def test_group_commit_renames_nothing(world, upstream_factory,
                                      relay_factory, tmp_path):
    """Queue format 4 (a relay): a group's envelopes go into their own
    message files (pwrite64) and one syncfs makes them durable; no name
    is made or changed in queue/ or data/ for them, and groups did
    form (40 messages in 8 sessions at once)."""
    up = upstream_factory()
    conf, queue = relay_conf(world)
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    assert set(send(d.port, 3, "warm").values()) == {250}
    up.wait_messages(3)
    wait_empty(queue)
    out = str(tmp_path / "strace.out")
    p = strace_relay(d, "-e", "trace=pwrite64,syncfs,fdatasync,renameat,"
                     "renameat2,unlinkat", out=out)
    try:
        codes = send_groups(d.port)
    finally:
        strace_stop(p)
    assert set(codes.values()) == {250}
    up.wait_messages(3 + 40)
    with open(out) as f:
        calls = [strip_pid(l) for l in f.read().splitlines()
                 if "resumed" not in l]
    assert not [l for l in calls if l.startswith(("rename", "unlink"))], \
        "\n".join(calls[:60])
    assert [l for l in calls if l.startswith("syncfs(")], \
        "no group commit formed"
    # Each envelope written into its file (and its footer overwritten
    # once the message is delivered).
    assert len([l for l in calls if l.startswith("pwrite64(")]) >= 40


DELIVER_FAULTS = [
    # Deliver mode keeps queue format 3 (tmp/ to queue/, renames and
    # directory syncs): its commit path's calls made to fail.
    # Its programs are slow to come back, so each message has a new
    # file in data/ and its commit is a group's (renameat, syncfs).
    ("renameat", "1+3"), ("renameat", "2"), ("syncfs", "1+2"),
    ("openat", "2+3"),
]


@needs_strace
@pytest.mark.parametrize("call,when", DELIVER_FAULTS)
def test_commit_fault_deliver_mode(world, relay_factory, tmp_path, call,
                                   when):
    """As test_commit_fault_never_answered_250, in deliver mode: with
    CALL failing now and again, every message answered 250 is handed to
    the program, none refused is, and the relay goes on."""
    d, queue, delivered = deliver_setup(world, relay_factory)
    ok, refused = send_with_faults(d, tmp_path, call, when)
    wait_for(lambda: ok <= delivered(), scaled(30),
             "every accepted message delivered")
    wait_empty(queue)
    time.sleep(scaled(1.5))
    assert not (refused & delivered()), refused & delivered()
    assert not d.log_grep(r"event=child-died"), \
        [m.string for m in d.log_grep(r"child-died|fatal|relay: .*error")]
    after = send(d.port, 3, "after")
    assert set(after.values()) == {250}, after
    wait_for(lambda: set(after) <= delivered(), scaled(30),
             "the mail after the faults")


def test_reused_file_holds_only_the_new_message(world, upstream_factory,
                                                relay_factory):
    """One worker, so each message reuses the file of the one before:
    a short message after a long one (kept and cut to size), and one
    after a message longer than the file kept for reuse (emptied
    first), arrive byte for byte, nothing of the earlier one after."""
    up = upstream_factory()
    conf, queue = relay_conf(world)
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr, workers=1)
    sizes = [40000, 300, 200000, 500, 60, 1]
    sent = []
    for n, size in enumerate(sizes):
        line = b"y" * 70 + b"\r\n"
        data = make_message(n, "size%d" % size) + line * (size // 72) + \
            b"z\r\n"
        with smtplib.SMTP("127.0.0.1", d.port, timeout=scaled(10)) as s:
            s.sendmail(SENDER, [RCPT], data)
        sent.append(data)
        up.wait_messages(n + 1)
        wait_empty(queue)
    got = {message_id(b): b for b in
           (split_received(m["data"])[1] for m in up.messages())}
    for data in sent:
        assert got[message_id(data)] == with_x_peer(data, "127.0.0.1")

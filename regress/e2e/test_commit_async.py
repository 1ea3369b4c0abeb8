"""The group commit's syncs run in a thread of the relay (relay/syncer.c):
while one message's commit waits for the disk, the relay's event loop
goes on, so another session's DATA gets its spool file (354) at once;
and the waiting message still hears 250 only after its sync returned
(SPEC 7).  The disk is made slow with strace -e inject=...:delay_exit=
on the relay's fsync of queue/."""
import os
import smtplib
import threading
import time

from harness import proc_status, scaled, wait_for
from relay_harness import (make_message, relay_conf,  # noqa: F401
                           relay_factory, upstream_factory, world)
from strace_tool import needs_strace, strace_stop
from test_queue_pool import (RCPT, SENDER, arrived, send, strace_relay,
                             wait_empty)
from skips import need_root


@needs_strace
def test_data_not_held_by_a_slow_commit(world, upstream_factory,
                                        relay_factory, tmp_path):
    """Message A's sync takes DELAY (strace); B, whose DATA
    is sent after A's final dot, gets 354 long before A's 250, and A's
    250 came no sooner than its sync; both arrive upstream."""
    delay = scaled(2)
    up = upstream_factory()
    conf, queue = relay_conf(world)
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    assert set(send(d.port, 2, "warm").values()) == {250}
    up.wait_messages(2)
    wait_empty(queue)
    # Its sync, whichever it is: fdatasync of its message file for a
    # message alone (queue format 4), syncfs for a group or a new file
    # in data/.
    p = strace_relay(d, "-e", "trace=fdatasync,fsync,syncfs", "-e",
                     "inject=fdatasync,fsync,syncfs:delay_exit=%d" %
                     int(delay * 1e6),
                     out=str(tmp_path / "strace.out"))
    a = smtplib.SMTP("127.0.0.1", d.port, timeout=scaled(30))
    b = smtplib.SMTP("127.0.0.1", d.port, timeout=scaled(30))
    try:
        a.ehlo()
        a.mail(SENDER)
        a.rcpt(RCPT)
        assert a.docmd("DATA")[0] == 354
        b.ehlo()
        b.mail(SENDER)
        b.rcpt(RCPT)
        a_reply = []
        t0 = time.monotonic()
        a.send(make_message(0, "slow") + b".\r\n")

        def wait_a():
            a_reply.append((a.getreply(), time.monotonic() - t0))
        ta = threading.Thread(target=wait_a)
        ta.start()
        # B's DATA goes after A's dot: the relay has A's commit first.
        code, _ = b.docmd("DATA")
        b_open = time.monotonic() - t0
        a_waiting = not a_reply
        assert code == 354
        b.send(make_message(1, "next") + b".\r\n")
        b_code = b.getreply()[0]
        ta.join(scaled(30))
    finally:
        strace_stop(p)
        for s in (a, b):
            try:
                s.quit()
            except (smtplib.SMTPException, OSError):
                s.close()
    (a_code, _), a_time = a_reply[0]
    assert a_code == 250 and b_code == 250
    # B's DATA did not wait for A's sync: the loop was not blocked in it
    # (B's 354 came while A still waited for its 250)...
    assert b_open < delay / 2 and a_waiting, \
        "354 after %.2f s, held by a sync of %.2f s" % (b_open, delay)
    # ...and A's 250 waited for its sync.
    assert a_time >= delay * 0.9, "250 after %.2f s, sync %.2f s" % (
        a_time, delay)
    wait_empty(queue)
    assert len(arrived(up)) == 4


def test_sync_thread_is_confined(world, upstream_factory, relay_factory):
    """The relay has its sync thread, and that thread is as confined as
    the relay: the seccomp filter (loaded with TSYNC), no-new-privs, the
    queue user, an empty bounding set; mail still goes through."""
    need_root()
    up = upstream_factory()
    conf, queue = relay_conf(world)
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    relay = wait_for(d.relay_pid, scaled(5), "the relay process")
    d.wait_log(r"event=queue-loaded")   # past its sandbox_enter()
    tasks = sorted(int(t) for t in os.listdir("/proc/%d/task" % relay))
    assert len(tasks) == 2, tasks
    main = proc_status(relay)
    for tid in tasks:
        st = proc_status_task(relay, tid)
        assert st["Seccomp"] == "2", (tid, st["Seccomp"])
        assert st["Seccomp_filters"] == main["Seccomp_filters"], tid
        assert st["NoNewPrivs"] == "1", (tid, st["NoNewPrivs"])
        assert st["Uid"] == main["Uid"] and st["Gid"] == main["Gid"], tid
        assert all(int(u) != 0 for u in st["Uid"].split()), st["Uid"]
        assert st["CapBnd"] == "0000000000000000", (tid, st["CapBnd"])
        assert st["CapEff"] == "0000000000000000", (tid, st["CapEff"])
    assert set(send(d.port, 3, "confined").values()) == {250}
    up.wait_messages(3)


def proc_status_task(pid, tid):
    out = {}
    with open("/proc/%d/task/%d/status" % (pid, tid)) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out

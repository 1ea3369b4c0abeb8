"""Queue safety (SPEC section 7.3, issue 9 items 2 and 8): the queue is
locked and a pid file written; queue-min-free refuses new mail at MAIL
and keeps room for the queue's own writes; delivered recipients are
recorded before anything that can fail, so a full disk and a restart
send nothing twice; damaged queue files go to queue/corrupt/, once, and
the sender hears of it; repeated errors are logged with back-off."""
import os
import re
import signal
import smtplib
import subprocess
import time

import pytest

from harness import SMTPD_BIN, alive, free_port, scaled, wait_for
from skips import root_only
from relay_harness import (IS_ROOT, make_message, message_file,  # noqa
                           message_id, queue_files, queue_ids, relay_conf,
                           relay_factory,
                           smtp_send, split_received, upstream_factory,
                           world)

GOOD = "good@example.net"
BAD = "bad@example.net"
SENDER = "sender@example.com"
ID = "0123456789ABCDEF"


def corrupt_dir(queue):
    return os.path.join(queue, "queue", "corrupt")


def queue_dirs(queue, owner_of=None):
    """QUEUE/queue made before the daemon's first start, as it would."""
    os.makedirs(os.path.join(queue, "queue"), exist_ok=True)
    for p in (queue, os.path.join(queue, "queue")):
        os.chmod(p, 0o700)


def put(path, data):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o644)


def dsns(up, to=SENDER):
    return [m for m in up.messages() if m["sender"] == "" and
            m["rcpts"] == [to]]


# --------------------------------------------------------------------------
# item 8: lock, pid file

def test_second_daemon_on_the_same_queue(world, upstream_factory,
                                         relay_factory):
    """A second smtpd on a locked queue exits 1 with one line naming the
    pid of the first; the first goes on."""
    up = upstream_factory()
    conf, queue = relay_conf(world)
    d1 = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    d2 = relay_factory("-f", conf, "-c", "relay", second=up.addr,
                       wait=False)
    d2.spawn()
    assert d2.wait_exit() == 1
    err = d2.stderr().strip().splitlines()
    assert len(err) == 1, err
    assert "pid %d" % d1.pid in err[0], err
    assert "in use" in err[0], err
    assert d1.running()
    smtp_send(d1.port, SENDER, [GOOD], make_message(0, "lock"))
    up.wait_messages(1)


def test_pid_file(world):
    """Without -d the daemon writes its pid to pid-file, and removes the
    file at a clean stop; the queue lock names the same pid."""
    pidfile = os.path.join(world.path, "smtpd.pid")
    conf, queue = relay_conf(world, lines=["pid-file " + pidfile])
    port = free_port()
    args = [SMTPD_BIN, "-f", conf, "-c", "relay"] + \
        ([] if IS_ROOT else ["-n"]) + ["127.0.0.1:%d" % port,
                                       "127.0.0.1:%d" % free_port()]
    env = dict(os.environ, SMTPD_WORKERS="1")
    r = subprocess.run(args, env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=scaled(20))
    assert r.returncode == 0, r.stderr
    pid = None
    try:
        text = wait_for(lambda: open(pidfile).read() if os.path.exists(
            pidfile) and open(pidfile).read().endswith("\n") else None,
            scaled(10), "the pid file")
        pid = int(text)
        assert alive(pid)
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            assert b"parent" in f.read()
        with open(os.path.join(queue, "smtpd.lock")) as f:
            assert int(f.read()) == pid
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not alive(pid), scaled(20), "the daemon to stop")
        assert not os.path.exists(pidfile)
    finally:
        if pid is not None and alive(pid):
            os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------
# item 8: damaged queue files

ENVELOPE = ("version 1\nid %s\ncreated %d\nnext-try 0\nattempts 0\n"
            "client 192.0.2.7\nclient-port 2525\nhelo client.example\n"
            "from %s\nsize %d\nflags 4\nbounce 0\nrcpt-P %s\ncode 0\n"
            "text %%00\nbounced 0\nend\n")


def test_corrupt_envelope_quarantined(world, upstream_factory,
                                      relay_factory):
    """An envelope that does not parse, placed before the start, goes to
    queue/corrupt/ with its message, is logged once with the reason, and
    its sender (readable in it) gets a DSN; one without a readable
    sender is set aside too.  A restart does not see them again."""
    up = upstream_factory()
    conf, queue = relay_conf(world, lines=["queue-retry 1s"])
    queue_dirs(queue)
    body = make_message(0, "corrupt")
    env = ENVELOPE % (ID, int(time.time()), SENDER, len(body), GOOD)
    env = env.replace("helo client.example", "helo %zz")
    qd = os.path.join(queue, "queue")
    put(os.path.join(qd, ID), body)
    put(os.path.join(qd, ID + ".env"), env.encode())
    other = "FEDCBA9876543210"
    put(os.path.join(qd, other), body)
    put(os.path.join(qd, other + ".env"), b"\x00garbage\n")
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    d.wait_log(r"event=queue-corrupt queue_id=%s reason=\"envelope does "
               r"not parse\" action=quarantined" % ID)
    d.wait_log(r"event=queue-corrupt queue_id=%s " % other)
    wait_for(lambda: dsns(up), scaled(15), "the DSN to the sender")
    dsn = dsns(up)[0]["data"]
    assert b"could not be recovered" in dsn, dsn
    assert GOOD.encode() in dsn
    assert sorted(os.listdir(corrupt_dir(queue))) == sorted(
        [ID, ID + ".env", other, other + ".env"])
    assert not [f for f in queue_files(queue) if f.startswith((ID, other))]
    # Never tried again: no second line, and nothing went to GOOD.
    time.sleep(scaled(2))
    assert len(d.log_grep(r"event=queue-corrupt queue_id=%s " % ID)) == 1
    assert not [m for m in up.messages() if GOOD in m["rcpts"]]
    assert d.stop() == 0
    d2 = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    d2.wait_log(r"event=queue-loaded messages=0$")
    assert not d2.log_grep(r"event=queue-corrupt")
    assert len(dsns(up)) == 1


def test_truncated_message_not_forwarded(world, upstream_factory,
                                         relay_factory):
    """A message file shorter than its envelope says is never forwarded
    (it would go out as if whole): it is set aside and the sender gets
    a DSN saying it could not be recovered."""
    # 451 at MAIL first: the message is deferred, so its envelope is
    # in queue/ID.env and its file holds the message alone (an envelope
    # in the file, queue format 4, goes with its first deferral).
    up = upstream_factory("--mail-code", "451", port=free_port())
    conf, queue = relay_conf(world, lines=["queue-retry 1s"])
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    qid = smtp_send(d.port, SENDER, [GOOD, BAD], make_message(1, "trunc"))
    d.wait_log(r"event=queued queue_id=%s$" % qid)
    d.wait_log(r"event=deferred queue_id=%s " % qid)
    assert d.stop() == 0
    up.stop()
    up.args = []
    path = message_file(queue, qid)
    assert "/data/" in path
    size = os.path.getsize(path)
    os.truncate(path, size // 2)
    up.start()
    d2 = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    d2.wait_log(r"event=queue-corrupt queue_id=%s reason=\"message file "
                r"has %d bytes, the envelope says %d\"" % (qid, size // 2,
                                                          size))
    wait_for(lambda: dsns(up), scaled(15), "the DSN to the sender")
    assert b"could not be recovered" in dsns(up)[0]["data"]
    assert not [m for m in up.messages() if m["sender"] == SENDER]
    assert os.path.exists(os.path.join(corrupt_dir(queue), qid))


# --------------------------------------------------------------------------
# item 2: queue-min-free

def test_queue_min_free_refuses_at_mail(world, upstream_factory,
                                        relay_factory):
    """Below queue-min-free (here: all of the file system) MAIL gets 452
    4.3.1 at once, before any data is sent."""
    up = upstream_factory()
    conf, queue = relay_conf(world, lines=["queue-min-free 100%"])
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    d.wait_log(r"event=queue-space-low ")
    s = smtplib.SMTP("127.0.0.1", d.port, timeout=scaled(10))
    try:
        s.ehlo("client.example")
        t0 = time.monotonic()
        code, text = s.mail(SENDER)
        assert code == 452, (code, text)
        assert text.startswith(b"4.3.1 Insufficient system storage"), text
        assert time.monotonic() - t0 < scaled(1)
    finally:
        s.close()
    assert up.messages() == []


needs_root = root_only     # it mounts a tmpfs


class SmallFS:
    """A tmpfs of size bytes mounted under world, for a queue."""

    def __init__(self, world, size):
        self.path = world.sub("qfs")
        subprocess.run(["mount", "-t", "tmpfs", "-o",
                        "size=%d,mode=0755" % size, "tmpfs", self.path],
                       check=True)
        self.queue = os.path.join(self.path, "queue")
        self.filler = os.path.join(self.path, "filler")

    def fill(self):
        """Take every free block (root may: tmpfs keeps none back)."""
        with open(self.filler, "ab", buffering=0) as f:
            for size in (65536, 4096, 512, 1):
                try:
                    while True:
                        f.write(b"\0" * size)
                except OSError:
                    pass
        st = os.statvfs(self.path)
        assert st.f_bavail * st.f_frsize < 65536

    def free(self):
        if os.path.exists(self.filler):
            os.unlink(self.filler)

    def umount(self):
        subprocess.run(["umount", "-l", self.path])


@pytest.fixture
def smallfs(world):
    fss = []

    def make(size):
        fs = SmallFS(world, size)
        fss.append(fs)
        return fs
    yield make
    for fs in fss:
        fs.umount()


def rep_lines(d):
    return d.log_grep(r"event=(bounce-failed|queue-error|"
                      r"queue-update-failed)")


@needs_root
def test_full_queue_drains_with_bounces(world, upstream_factory,
                                        relay_factory, smallfs):
    """A 4 MiB queue filled up to queue-min-free (MAIL then gets 452);
    the upstream answers 550 for one recipient and 250 for the other:
    every message is delivered once to the one, bounced for the other
    from the space kept back, and the queue drains."""
    fs = smallfs(4 * 1024 * 1024)
    up = upstream_factory("--rcpt-code", "%s=451" % GOOD,
                          "--rcpt-code", "%s=451" % BAD)
    conf, queue = relay_conf(world, queue=fs.queue, lines=[
        "queue-retry 1s", "queue-min-free 1M"])
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    big = b"Subject: fill\r\n\r\n" + (b"x" * 998 + b"\r\n") * 100
    ids, refused = [], None
    for i in range(80):
        s = smtplib.SMTP("127.0.0.1", d.port, timeout=scaled(10))
        try:
            s.ehlo("client.example")
            code, text = s.mail(SENDER)
            if code != 250:
                refused = (code, text)
                break
            s.rcpt(GOOD)
            s.rcpt(BAD)
            code, text = s.data(big)
            assert code == 250, ("DATA refused before MAIL was", code, text)
            ids.append(text.decode().rsplit(" ", 1)[-1])
        finally:
            s.close()
        if i % 8 == 7:
            time.sleep(1.1)     # the relay measures once a second
    assert refused is not None and refused[0] == 452, refused
    assert refused[1].startswith(b"4.3.1"), refused
    assert len(ids) >= 10
    up.stop()
    up.args = ["--rcpt-code", "%s=550" % BAD]
    up.start()
    t0 = time.monotonic()
    wait_for(lambda: queue_files(fs.queue) == [], scaled(60),
             "the queue to drain")
    took = time.monotonic() - t0
    print("drained %d messages in %.1fs" % (len(ids), took))
    got = [m for m in up.messages() if m["sender"] == SENDER]
    assert len(got) == len(ids)
    assert all(m["rcpts"] == [GOOD] for m in got)
    assert len(dsns(up)) == len(ids)
    assert len(rep_lines(d)) <= 10, rep_lines(d)[:10]


@needs_root
def test_full_disk_logs_with_backoff(world, upstream_factory,
                                     relay_factory, smallfs):
    """With the disk full to the last block no DSN can be written; the
    messages wait for it, and the same error is logged with back-off,
    not once per message per retry.  When space returns, it drains."""
    n = int(os.environ.get("QUEUE_SAFETY_N", "32"))
    fs = smallfs(8 * 1024 * 1024)
    up = upstream_factory(port=free_port(), start=False)
    conf, queue = relay_conf(world, queue=fs.queue, lines=[
        "queue-retry 1s", "queue-min-free 64K"])
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    for i in range(n):
        smtp_send(d.port, SENDER, [GOOD, BAD], make_message(i, "full"))
    fs.fill()
    up.args = ["--rcpt-code", "%s=550" % BAD]
    up.start()
    d.wait_log(r"result=failed", count=n, timeout=scaled(30))
    before = len(rep_lines(d))
    window = 8.0
    time.sleep(window)
    lines = len(rep_lines(d)) - before
    print("%d queued: %d repeated-error lines in %.0fs (%.1f/s)" % (
        n, lines, window, lines / window))
    assert lines <= 12, rep_lines(d)[-12:]
    assert len(queue_ids(fs.queue)) == n
    fs.free()
    t0 = time.monotonic()
    wait_for(lambda: queue_files(fs.queue) == [], scaled(60),
             "the queue to drain")
    print("drained in %.1fs once space returned" % (time.monotonic() - t0))
    assert len(dsns(up)) == n
    got = [m for m in up.messages() if m["sender"] == SENDER]
    assert len(got) == n and all(m["rcpts"] == [GOOD] for m in got)


@needs_root
def test_restart_after_partial_delivery_on_full_disk(world, upstream_factory,
                                                     relay_factory, smallfs):
    """One recipient accepts, the other is deferred, and the disk is full
    so no new envelope can be written: the delivery is still recorded
    (in place), and a restart tries only the deferred recipient."""
    fs = smallfs(2 * 1024 * 1024)
    up = upstream_factory("--rcpt-code", "%s=451" % BAD, port=free_port(),
                          start=False)
    conf, queue = relay_conf(world, queue=fs.queue, lines=[
        "queue-retry 1s", "queue-min-free 64K"])
    d = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    qid = smtp_send(d.port, SENDER, [GOOD, BAD], make_message(0, "part"))
    d.wait_log(r"event=queued queue_id=%s$" % qid)
    fs.fill()
    up.start()
    d.wait_log(r"queue_id=%s .*rcpt=<%s> result=delivered" % (qid, GOOD))
    d.wait_log(r"queue_id=%s .*rcpt=<%s> result=deferred" % (qid, BAD))
    assert d.stop() == 0
    fs.free()
    d2 = relay_factory("-f", conf, "-c", "relay", second=up.addr)
    d2.wait_log(r"event=queue-loaded messages=1$")
    d2.wait_log(r"queue_id=%s .*rcpt=<%s> result=deferred" % (qid, BAD))
    assert not d2.log_grep(r"rcpt=<%s>" % GOOD)
    got = [m for m in up.messages() if GOOD in m["rcpts"]]
    assert len(got) == 1, got

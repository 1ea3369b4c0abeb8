"""The imsg rules enforced between real processes (issue 10, "Done
when" 3): gdb makes a child send a message outside its role, or one of
the wrong size, on a real channel.  The parent kills a child that lies
to it, the relay reports a worker that lies to it (and the parent kills
that worker), a child told something bad by the parent exits; each
names the type (imsg_name()) in the log."""
import os
import re
import subprocess

import pytest

from harness import need_tool, scaled, wait_for
from test_confinement import delivers, died_of

WORKER = "'worker.c'::worker"
RELAY = "'relay.c'::relay"
PARENT = "'main.c'::parent"


@pytest.fixture
def daemon(smtpd_factory):
    args = ("-d",) if os.geteuid() == 0 else ("-d", "-n")
    d = smtpd_factory(args=args, workers=2)
    d.allow_child_death = True
    d.wait_workers(2)
    d.relay = wait_for(d.relays, scaled(5), "the relay")[0]
    return d


def gdb(pid, *exprs):
    """Evaluate exprs in pid under gdb; gdb's output."""
    argv = [need_tool("gdb"), "-nx", "-batch", "-p", str(pid)]
    for e in exprs:
        argv += ["-ex", e]
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=scaled(60))
    except subprocess.TimeoutExpired:
        pytest.skip("gdb did not finish attaching to %d" % pid)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    if re.search(r"ptrace: Operation not permitted|Could not attach|"
                 r"Unable to attach|not permitted", out):
        pytest.skip("gdb cannot attach here: %s" % out.strip()[-300:])
    if re.search(r"No symbol|not defined|cannot be evaluated", out):
        pytest.skip("no debugging symbols for the call: %s" % out[-300:])
    return out


def send(pid, ib, type_, nbytes, data):
    """Make pid queue and write one message on imsgbuf *ib."""
    return gdb(pid, "call (int)imsg_compose(%s, %s, 0, -1, %s, %d)"
               % (ib, type_, data, nbytes),
               "call (int)imsgbuf_write(%s)" % ib)


def killed_by_parent(d, role, pid, reason):
    rx = r'event=kill role=%s pid=%d reason="%s"' % (role, pid,
                                                     re.escape(reason))
    wait_for(lambda: d.log_grep(rx), scaled(10),
             "the parent to kill %s %d" % (role, pid))
    assert died_of(d, role, pid, scaled(10)) == 9


@pytest.mark.parametrize("type_,size,why", [
    ("IMSG_RESOLVE", 0, "not allowed from this sender"),
    ("IMSG_LOAD", 2, "payload too short"),
], ids=["wrong-role", "short"])
def test_worker_lies_to_parent(daemon, type_, size, why):
    d = daemon
    w = d.sessions()[0]
    out = send(w, "&%s.parent" % WORKER, type_, size, "&" + WORKER)
    killed_by_parent(d, "session", w, "bad message to the parent: "
                     "%s from session: %s" % (type_, why))
    assert not d.log_grep(r"event=kill role=relay"), out
    delivers(d, "after a worker lied to the parent")


@pytest.mark.parametrize("type_,size,why", [
    ("IMSG_LOAD", 4, "not allowed from this sender"),
    ("IMSG_PONG", 2, "payload too short"),
], ids=["wrong-role", "short"])
def test_relay_lies_to_parent(daemon, type_, size, why):
    d = daemon
    out = send(d.relay, "&%s.parent" % RELAY, type_, size, "&" + RELAY)
    killed_by_parent(d, "relay", d.relay, "bad message to the parent: "
                     "%s from relay: %s" % (type_, why))
    new = wait_for(lambda: [p for p in d.relays() if p != d.relay],
                   scaled(10), "a new relay (gdb said: %s)" % out[-300:])
    assert len(new) == 1
    delivers(d, "after the relay lied to the parent")


@pytest.mark.parametrize("type_,size,why", [
    ("IMSG_MSG_OK", 4, "not allowed from this sender"),
    ("IMSG_MSG_COMMIT", 3, "malformed"),
    ("IMSG_MSG_OPEN", 9, "payload too long"),
], ids=["wrong-role", "short", "long"])
def test_worker_lies_to_relay(daemon, type_, size, why):
    d = daemon
    w = d.sessions()[0]
    send(w, "%s.relay" % WORKER, type_, size, "&" + WORKER)
    rx = (r'event=worker-violation channel=\d+ reason="%s from session: '
          r'%s"' % (type_, why))
    wait_for(lambda: d.log_grep(rx), scaled(10), "the relay's report")
    killed_by_parent(d, "session", w,
                     "protocol violation on the relay channel")
    assert not d.log_grep(r"event=kill role=relay")
    delivers(d, "after a worker lied to the relay")


@pytest.mark.parametrize("type_,size,why", [
    ("IMSG_LOAD", 4, "not allowed from this sender"),
    ("IMSG_PING", 2, "payload too short"),
], ids=["wrong-role", "short"])
def test_parent_lies_to_child(daemon, type_, size, why):
    """The parent is trusted, but a bad message from it is still not
    acted on: the child exits, naming it."""
    d = daemon
    out = gdb(d.pid, "print %s.children->pid" % PARENT,
              "call (int)imsg_compose(&%s.children->ib, %s, 0, -1, &%s, "
              "%d)" % (PARENT, type_, PARENT, size),
              "call (int)imsgbuf_write(&%s.children->ib)" % PARENT)
    m = re.search(r"\$1 = (\d+)", out)
    assert m, out
    pid = int(m.group(1))
    role = "relay" if pid == d.relay else "session"
    wait_for(lambda: d.log_grep(
        r"bad message from the parent: %s from parent: %s"
        % (type_, why)), scaled(10), "the child's last word")
    wait_for(lambda: d.log_grep(r"event=child-died role=%s pid=%d status=1"
                                % (role, pid)), scaled(10),
             "the child's exit (gdb said: %s)" % out[-300:])
    assert not d.log_grep(r"event=kill")
    delivers(d, "after the parent lied to a child")

"""Privilege separation and the sandbox (SPEC sections 1 and 10).

Started without -n (root only): every child runs as the unprivileged
user, chrooted, with seccomp mode 2 and NoNewPrivs; a forbidden system
call kills the child with SIGSYS and the parent replaces it.  With -n
(any user) the sandbox that needs no root still applies."""
import os
import re
import subprocess
import time

import pytest

from harness import (cmdline, debug_block, message, need_tool, proc_status,
                     scaled, wait_for)
from skips import need_arch, need_root, need_user, root_only

needs_root = root_only


def smtpd_user(name="_smtpd"):
    return need_user(name)


def role_user(role):
    """The user of a role: the workers' _smtpd, the relay's _smtpq."""
    return smtpd_user("_smtpq" if role in ("relay", "smtpd: relay")
                      else "_smtpd")


@pytest.fixture
def privsep(smtpd_factory):
    """A daemon started as root without -n: it drops privileges."""
    need_root()
    smtpd_user()
    smtpd_user("_smtpq")
    return smtpd_factory(args=("-d",), workers=3)


def ids(field):
    return [int(x) for x in field.split()]


def children_by_role(d):
    kids = d.children()
    roles = {}
    for p in kids:
        roles.setdefault(cmdline(p), []).append(p)
    return roles


def assert_sandboxed(pid, chrooted=True, user=None):
    st = proc_status(pid)
    uids, gids = ids(st["Uid"]), ids(st["Gid"])
    if user is not None:
        assert uids == [user.pw_uid] * 4, (pid, st["Uid"])
        assert gids == [user.pw_gid] * 4, (pid, st["Gid"])
        assert all(u != 0 for u in uids) and all(g != 0 for g in gids)
        assert 0 not in ids(st.get("Groups", "")), st.get("Groups")
        assert int(st["CapEff"], 16) == 0, st["CapEff"]
        assert int(st["CapPrm"], 16) == 0, st["CapPrm"]
    assert st["Seccomp"] == "2", (pid, st["Seccomp"])
    assert st["NoNewPrivs"] == "1", (pid, st["NoNewPrivs"])
    root = os.readlink("/proc/%d/root" % pid)
    if chrooted:
        assert root != "/", (pid, root)
    return st


def limits(pid):
    out = {}
    with open("/proc/%d/limits" % pid) as f:
        for line in f.readlines()[1:]:
            name = line[:26].strip()
            soft, hard = line[26:].split()[:2]
            out[name] = (soft, hard)
    return out


# -- without -n, as root ----------------------------------------------------

def test_processes_and_credentials(privsep):
    d = privsep
    assert cmdline(d.pid) == "smtpd: parent"
    # The parent alone keeps root.
    assert ids(proc_status(d.pid)["Uid"])[0] == 0
    d.wait_workers(3)
    roles = wait_for(lambda: (lambda r: r if len(r.get("smtpd: relay", []))
                              == 1 else None)(children_by_role(d)),
                     scaled(5), "the relay")
    assert sorted(roles) == ["smtpd: relay", "smtpd: session"], roles
    assert len(roles["smtpd: session"]) == 3
    assert len(roles["smtpd: relay"]) == 1
    for pid in d.children():
        assert_sandboxed(pid, chrooted=True, user=role_user(cmdline(pid)))
        lim = limits(pid)
        assert lim["Max core file size"] == ("0", "0"), lim
        assert lim["Max processes"] == ("0", "0"), lim
    for pid in roles["smtpd: session"]:
        assert os.readlink("/proc/%d/root" % pid) == "/var/empty"


def test_default_worker_count_is_cpus(smtpd_factory):
    need_root()
    smtpd_user()
    n = min(os.sysconf("SC_NPROCESSORS_ONLN"), 256)
    d = smtpd_factory(args=("-d",), workers=None)
    d.wait_workers(n)


def test_privsep_delivers(privsep):
    c = privsep.client()
    c.ehlo()
    wire, lines = message("privsep")
    c.send_message(wire)
    assert privsep.wait_blocks(1) == [debug_block(lines)]
    assert privsep.log_grep(r"event=start .*privsep=yes")


# -- a forbidden system call ----------------------------------------------

FORBIDDEN = {"x86_64": (57, "fork"), "aarch64": (40, "mount")}


def gdb_syscall(pid, nr):
    """Make pid call syscall(nr) under gdb (nr: a number, or "NR,
    ARGS..."); returns gdb's output.  Every caller runs as root, where
    gdb can always attach: a hang or a refusal is a failure of the
    machine or of the test, never a skip (issue 15)."""
    gdb = need_tool("gdb")
    try:
        p = subprocess.run([gdb, "-nx", "-batch", "-p", str(pid), "-ex",
                            "call (long)syscall(%s)" % nr],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=scaled(60))
    except subprocess.TimeoutExpired:
        pytest.fail("gdb did not finish attaching to %d in %ds"
                    % (pid, scaled(60)))
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    if re.search(r"ptrace: Operation not permitted|Could not attach|"
                 r"Unable to attach|not permitted", out):
        pytest.fail("gdb cannot attach to %d as root: %s"
                    % (pid, out.strip()[-300:]))
    return out


def forbidden_syscall_kills(d, role, user):
    nr, name = need_arch(FORBIDDEN)
    d.allow_child_death = True
    if role == "session":
        victims = d.wait_workers(d.workers)
    else:
        victims = wait_for(d.relays, scaled(5), "the relay")
    victim = victims[0]
    out = gdb_syscall(victim, nr)
    died = wait_for(lambda: d.log_grep(
        r"event=child-died role=%s pid=%d signal=(\d+)" % (role, victim)),
        scaled(5), "child-died of %d (gdb said: %s)" % (victim, out[-500:]))
    assert died[0].group(1) == "31", \
        "%s() did not kill %d with SIGSYS: %s" % (name, victim,
                                                  died[0].group(0))
    assert "SIGSYS" in out, out
    # A new child of the same role, sandboxed as well.
    if role == "session":
        new = wait_for(lambda: [p for p in d.sessions()
                                if p not in victims], scaled(5),
                       "a new session worker")
    else:
        new = wait_for(lambda: [p for p in d.relays() if p != victim],
                       scaled(5), "a new relay")
    assert len(new) == 1
    assert d.log_grep(r"event=spawn role=%s pid=%d$" % (role, new[0]))
    wait_for(lambda: proc_status(new[0]).get("Seccomp") == "2", scaled(5),
             "the new child's sandbox")
    assert_sandboxed(new[0], chrooted=user is not None, user=user)
    # And the daemon still takes mail.
    c = d.client()
    c.ehlo()
    wire, lines = message("after SIGSYS")
    for _ in range(100):
        c.expect("MAIL FROM:<a@example.com>", 250, "2.1.0")
        c.expect("RCPT TO:<b@example.com>", 250, "2.1.5")
        r = c.cmd("DATA")
        if r.code == 354:
            c.send(wire + b".\r\n")
            r = c.reply()
        if r.code == 250:
            break
        # Only while a new relay is being connected: 451, then retry.
        assert r.code == 451, r.raw
        c.expect("RSET", 250, "2.0.0")
        time.sleep(0.02)    # a client's retry interval, not a wait
    assert r.code == 250, r.raw
    assert d.wait_blocks(1) == [debug_block(lines)]
    assert len(d.log_grep(r"event=child-died")) == 1


@pytest.mark.parametrize("role", ["session", "relay"])
def test_forbidden_syscall_kills_child(privsep, role):
    forbidden_syscall_kills(privsep, role, role_user(role))


# -- with -n: the sandbox that needs no root --------------------------------

def test_sandbox_without_privsep(smtpd_factory):
    d = smtpd_factory(args=("-d", "-n"), workers=2)
    d.wait_workers(2)
    wait_for(d.relays, scaled(5), "the relay")
    assert cmdline(d.pid) == "smtpd: parent"
    roles = children_by_role(d)
    assert sorted(roles) == ["smtpd: relay", "smtpd: session"], roles
    assert len(roles["smtpd: session"]) == 2
    for pid in d.children():
        assert_sandboxed(pid, chrooted=False)
        assert limits(pid)["Max core file size"] == ("0", "0")


@needs_root
def test_forbidden_syscall_kills_child_without_privsep(smtpd_factory):
    d = smtpd_factory(args=("-d", "-n"), workers=2)
    forbidden_syscall_kills(d, "session", None)


@needs_root
def test_reload_keeps_privilege_separation(privsep):
    """SIGHUP replaces the workers: the new ones are as confined as the
    old ones (a reload once left them running as root, unchrooted)."""
    import signal as _signal
    d = privsep
    user = smtpd_user()
    old = d.wait_workers(3)
    d.send_signal(_signal.SIGHUP)
    new = d.wait_workers(3, exclude=old, timeout=scaled(10))
    assert not set(new) & set(old)
    for pid in new:
        assert_sandboxed(pid, chrooted=True, user=user)
        assert os.readlink("/proc/%d/root" % pid) == "/var/empty"
    # The new workers serve.
    c = d.client()
    c.expect(b"EHLO client.example", 250)
    c.expect(b"QUIT", 221, "2.0.0")

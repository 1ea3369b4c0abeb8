"""A compromised session worker against the relay (SPEC section 10,
issue 9 item 3).  Code cannot be injected into a worker from outside,
so gdb makes a worker run the system calls that an attacker holding it
would: F_SETOWN, F_SETSIG and O_ASYNC on the listening socket that every
worker shares (the kernel then sends the chosen signal, SIGKILL or
SIGSTOP, to the chosen process whenever a client connects), and
executable mappings.  Each of them must kill the worker (SIGSYS), and
the relay must neither die nor freeze.  Then: the relay and the workers
run as different users, every child has an empty capability bounding
set and an empty environment, and the parent replaces a child that is
stopped or stops answering its pings.  Root only, like test_privsep."""
import os
import platform
import shutil
import signal
import subprocess
import time

import pytest

from harness import (SANITIZED, check, debug_block, message, proc_status,
                     sandbox_env_ok, scaled, wait_for)
from test_daemon import listener_inode
from test_privsep import gdb_syscall
from skips import need_arch, need_root, need_tool, need_user

# x86_64 and aarch64 share these values (asm-generic).
F_GETFL, F_SETFL, F_SETOWN, F_SETSIG, F_SETOWN_EX = 3, 4, 8, 10, 15
O_NONBLOCK, O_ASYNC = 0o4000, 0o20000
PROT_READ, PROT_EXEC = 1, 4
MAP_PRIVATE_ANON = 0x22
NR = {"x86_64": {"fcntl": 72, "mmap": 9, "mprotect": 10},
      "aarch64": {"fcntl": 25, "mmap": 222, "mprotect": 226}}


def user(name):
    return need_user(name)


@pytest.fixture
def privsep(smtpd_factory):
    need_root()
    for name in ("_smtpd", "_smtpq"):
        user(name)
    need_arch(NR)
    d = smtpd_factory(args=("-d",), workers=2,
                      env={"SMTPD_E2E_CANARY": "must-not-leak"})
    d.relay = wait_for(d.relays, scaled(5), "the relay")[0]
    return d


PROC_PARENT_FD = 3      # a child's channel to the parent


def nr(name):
    return NR[platform.machine()][name]


def listener_fd(pid, port):
    """The descriptor number of the listening socket in process pid."""
    link = "socket:[%s]" % listener_inode(port)
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == link:
                return int(fd)
        except OSError:
            pass
    raise AssertionError("no listener descriptor in %d" % pid)


def gdb_call(pid, *args):
    """pid calls syscall(args...) under gdb (all arguments long)."""
    return gdb_syscall(pid, ", ".join("%dL" % a for a in args))


def died_of(d, role, pid, timeout=None):
    m = wait_for(lambda: d.log_grep(
        r"event=child-died role=%s pid=%d signal=(\d+)" % (role, pid)),
        timeout or scaled(5), "the death of %s %d" % (role, pid))
    return int(m[0].group(1))


def send_one(d, subject, timeout=None):
    """One message through a new client; its final reply."""
    c = d.client(timeout=timeout or scaled(10))
    c.ehlo()
    wire, lines = message(subject)
    c.expect("MAIL FROM:<a@example.com>", 250, "2.1.0")
    c.expect("RCPT TO:<b@example.com>", 250, "2.1.5")
    r = c.cmd("DATA")
    if r.code == 354:
        c.send(wire + b".\r\n")
        r = c.reply()
    c.close()
    return r, lines


def delivers(d, subject):
    """A message is accepted (a 451 while a new relay comes up is
    retried) and printed."""
    for _ in range(200):
        r, lines = send_one(d, subject)
        if r.code == 250:
            break
        assert r.code == 451, r.raw
        time.sleep(0.02)    # a client's retry interval, not a wait
    assert r.code == 250, r.raw
    wait_for(lambda: debug_block(lines) in d.blocks(), scaled(10),
             "the message printed")


# -- the attack of issue 9 --------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP],
                         ids=["SIGKILL", "SIGSTOP"])
def test_worker_cannot_aim_sigio_at_the_relay(privsep, sig):
    """F_SETOWN(relay) + F_SETSIG(sig) + O_ASYNC on the shared listener:
    the first call kills the worker; the relay lives on, never stopped,
    and mail still goes through."""
    d = privsep
    d.allow_child_death = True
    w = d.wait_workers(2)[0]
    fd = listener_fd(w, d.port)
    out = gdb_call(w, nr("fcntl"), fd, F_SETOWN, d.relay)
    if "SIGSYS" not in out:
        # The old code let it through: arm the rest of the attack.
        gdb_call(w, nr("fcntl"), fd, F_SETSIG, sig)
        gdb_call(w, nr("fcntl"), fd, F_SETFL, O_ASYNC | O_NONBLOCK)
    # Clients connect (the kernel would now signal the relay) and send.
    r, lines = send_one(d, "after the attack", timeout=scaled(10))
    check(r, 250, "2.0.0")
    assert died_of(d, "session", w) == signal.SIGSYS, out[-300:]
    assert "SIGSYS" in out, out[-300:]
    st = proc_status(d.relay)
    assert st["State"][0] in "SR", st["State"]
    assert d.relays() == [d.relay]
    assert not d.log_grep(r"event=child-died role=relay")


FORBIDDEN_CALLS = {
    "F_SETOWN": lambda fd, relay: ("fcntl", fd, F_SETOWN, relay),
    "F_SETOWN_EX": lambda fd, relay: ("fcntl", fd, F_SETOWN_EX, 0),
    "F_SETSIG": lambda fd, relay: ("fcntl", fd, F_SETSIG, signal.SIGKILL),
    "O_ASYNC": lambda fd, relay: ("fcntl", fd, F_SETFL,
                                  O_ASYNC | O_NONBLOCK),
    "mmap-PROT_EXEC": lambda fd, relay: ("mmap", 0, 4096,
                                         PROT_READ | PROT_EXEC,
                                         MAP_PRIVATE_ANON, -1, 0),
    "mprotect-PROT_EXEC": lambda fd, relay: ("mprotect", 0, 4096,
                                             PROT_READ | PROT_EXEC),
}


@pytest.mark.parametrize("role,call", [("session", c) for c in
                                       FORBIDDEN_CALLS] +
                         [("relay", "F_SETOWN"), ("relay", "O_ASYNC"),
                          ("relay", "mmap-PROT_EXEC")])
def test_forbidden_arguments_kill(privsep, role, call):
    d = privsep
    d.allow_child_death = True
    victim = d.wait_workers(2)[0] if role == "session" else d.relay
    fd = (listener_fd(victim, d.port) if role == "session" else
          PROC_PARENT_FD)
    name, *args = FORBIDDEN_CALLS[call](fd, d.relay)
    out = gdb_call(victim, nr(name), *args)
    assert died_of(d, role, victim) == signal.SIGSYS, out[-300:]
    delivers(d, "after %s in the %s" % (call, role))


def test_allowed_fcntl_does_not_kill(privsep):
    """The filter looks at the arguments: F_GETFL and F_SETFL with
    O_NONBLOCK go on working (the workers need them)."""
    d = privsep
    w = d.wait_workers(2)[0]
    fd = listener_fd(w, d.port)
    out = gdb_call(w, nr("fcntl"), fd, F_GETFL)
    out += gdb_call(w, nr("fcntl"), fd, F_SETFL, O_NONBLOCK)
    assert "SIGSYS" not in out, out[-300:]
    assert w in d.sessions()
    delivers(d, "after allowed fcntl")
    assert not d.log_grep(r"event=child-died")


# -- users, capabilities, environment --------------------------------------

def test_relay_and_workers_are_different_users(privsep):
    d = privsep
    worker_pw, relay_pw = user("_smtpd"), user("_smtpq")
    assert worker_pw.pw_uid != relay_pw.pw_uid
    workers = d.wait_workers(2)
    for w in workers:
        assert proc_status(w)["Uid"].split() == [str(worker_pw.pw_uid)] * 4
    assert proc_status(d.relay)["Uid"].split() == \
        [str(relay_pw.pw_uid)] * 4
    assert proc_status(d.relay)["Gid"].split()[0] != \
        proc_status(workers[0])["Gid"].split()[0]

    def kill_as(uid, gid, pid):
        code = ("import os, sys\n"
                "os.setgroups([]); os.setgid(%d); os.setuid(%d)\n"
                "try:\n    os.kill(%d, 0)\nexcept PermissionError:\n"
                "    sys.exit(13)\nsys.exit(0)\n" % (gid, uid, pid))
        return subprocess.run([shutil.which("python3"), "-c", code],
                              timeout=scaled(10)).returncode
    # The worker's user may signal a worker (the test can fail) ...
    assert kill_as(worker_pw.pw_uid, worker_pw.pw_gid, workers[1]) == 0
    # ... but not the relay.
    assert kill_as(worker_pw.pw_uid, worker_pw.pw_gid, d.relay) == 13


# setproctitle(3) reuses the area /proc/PID/environ shows: what the
# process holds is what environ(7) points to, read by gdb.
ENV_GDB = """set $i = 0
if *(char ***)&environ != 0
  while (*(char ***)&environ)[$i] != 0
    printf "ENV:%s\\n", (*(char ***)&environ)[$i]
    set $i = $i + 1
  end
end
printf "ENV-END\\n"
"""


def environment(pid):
    """The environment of process pid: a list of b"NAME=value"."""
    gdb = need_tool("gdb")
    script = "/tmp/smtpd-env-%d.gdb" % os.getpid()
    with open(script, "w") as f:
        f.write(ENV_GDB)
    try:
        p = subprocess.run([gdb, "-nx", "-batch", "-p", str(pid), "-x",
                            script], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=scaled(60))
    finally:
        os.unlink(script)
    lines = p.stdout.split(b"\n")
    assert b"ENV-END" in lines, (p.stdout + p.stderr)[-500:]
    return [l[4:] for l in lines if l.startswith(b"ENV:")]


def test_children_status_and_environment(privsep):
    """Seccomp 2, NoNewPrivs 1, a non-zero Uid and an empty capability
    bounding set in every child of every role, and nothing of the
    parent's environment (SMTPD_E2E_CANARY, PATH, ...)."""
    d = privsep
    kids = d.wait_workers(2) + [d.relay]
    for pid in kids:
        st = proc_status(pid)
        assert st["Seccomp"] == "2", (pid, st["Seccomp"])
        assert st["NoNewPrivs"] == "1", (pid, st["NoNewPrivs"])
        assert all(int(u) != 0 for u in st["Uid"].split()), st["Uid"]
        assert st["CapBnd"] == "0000000000000000", (pid, st["CapBnd"])
        env = environment(pid)
        assert sandbox_env_ok(env), (pid, env)


def test_rlimits(privsep):
    """No new processes, no core files, bounded descriptors and data."""
    d = privsep
    for pid in d.wait_workers(2) + [d.relay]:
        with open("/proc/%d/limits" % pid) as f:
            lim = {l[:26].strip(): l[26:].split()[:2]
                   for l in f.readlines()[1:]}
        assert lim["Max processes"] == ["0", "0"], lim
        assert lim["Max core file size"] == ["0", "0"], lim
        assert lim["Max open files"][1] != "unlimited", lim
        # (The sanitizers' shadow memory cannot live under a bound.)
        if not SANITIZED:
            assert lim["Max data size"][1] != "unlimited", lim


# -- stopped and stuck children --------------------------------------------

def test_stopped_worker_is_replaced(privsep):
    d = privsep
    d.allow_child_death = True
    old = d.wait_workers(2)
    os.kill(old[0], signal.SIGSTOP)
    t0 = time.monotonic()
    new = d.wait_workers(2, exclude=(old[0],), timeout=scaled(10))
    assert old[1] in new
    assert d.log_grep(r"event=child-stopped role=session pid=%d" % old[0])
    assert died_of(d, "session", old[0]) == signal.SIGKILL
    assert time.monotonic() - t0 < scaled(10)
    delivers(d, "after a stopped worker")


def test_stopped_relay_is_replaced_and_data_answered(privsep):
    """A frozen relay would leave DATA without a reply for ever: the
    parent kills it, a new relay takes over, the client gets an answer
    and a retry goes through."""
    d = privsep
    d.allow_child_death = True
    d.wait_workers(2)
    os.kill(d.relay, signal.SIGSTOP)
    t0 = time.monotonic()
    r, _ = send_one(d, "relay stopped", timeout=scaled(20))
    assert r.code in (250, 451), r.raw
    assert time.monotonic() - t0 < scaled(15)
    assert died_of(d, "relay", d.relay) == signal.SIGKILL
    new = wait_for(lambda: [p for p in d.relays() if p != d.relay],
                   scaled(10), "a new relay")
    assert len(new) == 1
    delivers(d, "after a stopped relay")


def test_stuck_child_is_killed(smtpd_factory):
    """A child held under ptrace (not stopped as its parent sees it,
    but answering nothing) misses its pings and is replaced."""
    need_root()
    user("_smtpq")
    gdb = need_tool("gdb")
    d = smtpd_factory(args=("-d", "-v"), workers=2,
                      env={"SMTPD_PING_INTERVAL": "200"})
    d.allow_child_death = True
    old = d.wait_workers(2)
    # Up: it answered a ping (before that it has two minutes).
    wait_for(lambda: d.log_grep(r"event=alive role=session pid=%d$" %
                                old[0]), scaled(10), "the first answer")
    # gdb holds the worker for 8 s; the deadline is 1 s.  (The kernel
    # tells the parent of the death only once the tracer lets go.)
    holder = subprocess.Popen([gdb, "-nx", "-batch", "-p", str(old[0]),
                               "-ex", "shell sleep 8"],
                              stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: proc_status(old[0])["State"][0] == "t",
                 scaled(20), "gdb to hold the worker")
        wait_for(lambda: d.log_grep(r"event=kill role=session pid=%d "
                                    r"reason=\"no answer to ping\"" %
                                    old[0]),
                 scaled(5), "the parent to kill the stuck worker")
        assert holder.poll() is None, "killed only after gdb let go"
        holder.wait(scaled(20))
        new = d.wait_workers(2, exclude=(old[0],), timeout=scaled(10))
        assert old[1] in new
        assert died_of(d, "session", old[0]) == signal.SIGKILL
    finally:
        holder.kill()
        holder.wait(scaled(10))
    delivers(d, "after a stuck worker")


def test_ping_answered(smtpd_factory):
    """With pings every 50 ms, idle and busy children all answer: none
    is killed for it."""
    need_root()
    user("_smtpq")
    d = smtpd_factory(args=("-d",), workers=2,
                      env={"SMTPD_PING_INTERVAL": "50"})
    for i in range(5):
        delivers(d, "pinged %d" % i)
    time.sleep(0.5)     # ten ping rounds while idle; nothing to poll for
    assert not d.log_grep(r"event=kill")
    assert len(d.sessions()) == 2 and len(d.relays()) == 1

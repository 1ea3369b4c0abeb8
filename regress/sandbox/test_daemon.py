"""In the background (no -d) the daemon logs through syslog, and only
the parent talks to syslog: a sandboxed child that called syslog(3)
itself would try socket(2) to reach /dev/log and be killed by its
seccomp filter.  So sessions in the background must not kill workers,
whether or not a syslog daemon is there."""
import os
import signal
import smtplib
import subprocess

from harness import (SMTPD_BIN, children_of, cmdline, free_port, scaled,
                     wait_for)


def listener_inode(port):
    """The socket inode listening on 127.0.0.1:port (/proc/net/tcp)."""
    want = "0100007F:%04X" % port
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == want and fields[3] == "0A":
                return fields[9]
    return None


def find_daemon(port):
    """The smtpd parent holding the listener of port."""
    inode = listener_inode(port)
    if inode is None:
        return None
    link = "socket:[%s]" % inode
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        if cmdline(pid) != "smtpd: parent":
            continue
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == link:
                    return pid
            except OSError:
                pass
    return None


def test_background_sessions_keep_workers(tmp_path):
    port = free_port()
    env = dict(os.environ)
    env["SMTPD_WORKERS"] = "2"
    p = subprocess.run([SMTPD_BIN, "-n", "-c", "debug",
                        "127.0.0.1:%d" % port], env=env,
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=scaled(10), cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    pid = wait_for(lambda: find_daemon(port), scaled(5), "the daemon")
    try:
        kids = wait_for(lambda: (lambda k: k if len(k) == 3 else None)(
            children_of(pid)), scaled(5), "3 children")
        for i in range(5):
            with smtplib.SMTP("127.0.0.1", port, timeout=scaled(10)) as s:
                assert s.sendmail("a@example.com", ["b@example.com"],
                                  "Subject: %d\r\n\r\nbody\r\n" % i) == {}
        # Every child that served is the one that started: none died.
        assert children_of(pid) == kids
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not os.path.exists("/proc/%d" % pid) or
                 open("/proc/%d/stat" % pid).read().split()[2] == "Z",
                 scaled(15), "the daemon to stop")

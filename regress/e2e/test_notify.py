"""Under a service manager (SPEC section 12, Service): with NOTIFY_SOCKET
set and no -d, the daemon stays in the foreground as the unit's main
process, writes its pid file, and speaks the notification protocol
itself: READY=1 once it serves, RELOADING=1 then READY=1 around a
SIGHUP, STOPPING=1 on SIGTERM.  The manager here is a datagram socket
of the test, as systemd's is."""
import os
import signal
import socket
import subprocess

from harness import SMTPD_BIN, Client, check, free_port, scaled, wait_for


def read_state(sock, timeout):
    """The next notification, as a dict of its assignments."""
    sock.settimeout(timeout)
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.split("\n") if line)


def wait_state(sock, key, timeout):
    """Notifications until one sets key; that one."""
    deadline = scaled(timeout)
    for _ in range(20):
        st = read_state(sock, deadline)
        if key in st:
            return st
    raise AssertionError("no %s notification" % key)


def test_notify_ready_reload_stop(tmp_path):
    port = free_port()
    pidfile = str(tmp_path / "smtpd.pid")
    conf = str(tmp_path / "smtpd.conf")
    with open(conf, "w") as f:
        f.write("mode debug\nlisten on 127.0.0.1 port %d\n"
                "pid-file %s\nworkers 1\n" % (port, pidfile))
    path = str(tmp_path / "notify")
    mgr = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    mgr.bind(path)
    env = dict(os.environ, NOTIFY_SOCKET=path)
    p = subprocess.Popen([SMTPD_BIN, "-n", "-f", conf], env=env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, start_new_session=True)
    try:
        st = wait_state(mgr, "READY", 10)
        assert st["READY"] == "1"
        # No fork: the process the manager started is the daemon.
        assert int(st["MAINPID"]) == p.pid
        assert "debug mode" in st["STATUS"], st
        assert p.poll() is None
        pid = wait_for(lambda: open(pidfile).read().strip()
                       if os.path.exists(pidfile) else None,
                       scaled(5), "the pid file")
        assert int(pid) == p.pid
        c = Client(port)
        check(c.reply(), 220)
        c.close()

        p.send_signal(signal.SIGHUP)
        st = wait_state(mgr, "RELOADING", 10)
        assert st["RELOADING"] == "1" and int(st["MONOTONIC_USEC"]) > 0
        st = wait_state(mgr, "READY", 10)
        assert st["READY"] == "1"

        p.send_signal(signal.SIGTERM)
        st = wait_state(mgr, "STOPPING", 10)
        assert st["STOPPING"] == "1"
        assert p.wait(timeout=scaled(20)) == 0
        assert not os.path.exists(pidfile)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=scaled(10))
        mgr.close()
    # No child was left behind.
    assert subprocess.run(["pgrep", "-s", str(p.pid)],
                          capture_output=True).returncode == 1
    assert not p.stderr.read().strip()

"""The command line (SPEC section 3): flags, errors, exit status,
signals, listeners."""
import os
import re
import signal
import socket
import subprocess

import pytest

from skips import ipv6_only
from harness import (SMTPD_BIN, Daemon, check, debug_block, free_port,
                     group_members, have_ipv6_loopback, message, scaled,
                     wait_for)


def run(*args, timeout=None, env=None):
    """Run the binary to completion (it must exit by itself)."""
    e = dict(os.environ)
    e["SMTPD_WORKERS"] = "1"
    if env:
        e.update(env)
    p = subprocess.Popen([SMTPD_BIN] + list(args), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=e, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout or scaled(10))
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise AssertionError("smtpd %s did not exit" % " ".join(args))
    finally:
        if group_members(p.pid):
            os.killpg(p.pid, signal.SIGKILL)
    wait_for(lambda: not group_members(p.pid), scaled(5),
             "no process left")
    return p.returncode, out.decode(), err.decode()


def one_line(err):
    """Exactly one non-empty line on standard error."""
    return err.count("\n") == 1 and err.endswith("\n") and len(err) > 1


def test_version():
    rc, out, err = run("-V")
    assert rc == 0
    assert re.fullmatch(r"smtpd \d+\.\d+(\.\d+)?\S*\n", out), out
    assert err == ""


def test_help():
    rc, out, err = run("-h")
    assert rc == 0
    text = out + err
    assert text.startswith("usage: smtpd ")
    for flag in ("-c mode", "-f file", "-s size", "-u"):
        assert flag in text


@pytest.mark.parametrize("args,word", [
    (["-Z"], "-Z"),
    (["-q", "127.0.0.1:2525"], "-q"),
    (["-c"], "-c"),
    (["-s"], "-s"),
    (["-c", "bogus"], "bogus"),
    (["-s", "0"], "0"),
    (["-s", "10X"], "10X"),
    (["-s", "-5"], "-5"),
    (["-s", "K"], "K"),
    (["-s", "99999999999G"], "99999999999G"),
    (["a:1", "b:2", "c:3"], "arguments"),
])
def test_bad_option(args, word):
    rc, out, err = run(*args)
    assert rc == 1
    assert out == ""
    # SPEC 3: one line on standard error saying what (no usage after it).
    assert one_line(err), err
    assert err.startswith("smtpd: ") and word in err, err


@pytest.mark.parametrize("where", ["127.0.0.1:0", "127.0.0.1:65536",
                                   "127.0.0.1:99999", "127.0.0.1:abc",
                                   "127.0.0.1:", "127.0.0.1", "127.0.0.1:-1",
                                   "[::1:25", "::1:25", "[::1]25"])
def test_bad_port(where):
    rc, out, err = run("-d", "-n", where)
    assert rc == 1
    assert one_line(err), err
    assert err.startswith("smtpd: ") and where in err, err


def test_bad_listen_host():
    rc, out, err = run("-d", "-n", "mail.example.com:%d" % free_port())
    assert rc == 1
    assert one_line(err), err
    assert "mail.example.com" in err


def test_deliver_mode_needs_a_program():
    rc, out, err = run("-d", "-n", "-c", "deliver",
                       "127.0.0.1:%d" % free_port())
    assert rc == 1
    assert one_line(err), err


def test_config_file_refused():
    rc, out, err = run("-d", "-n", "-f", "/nonexistent/smtpd.conf",
                       "127.0.0.1:%d" % free_port())
    assert rc == 1
    assert one_line(err), err
    assert "/nonexistent/smtpd.conf" in err


def test_check_only():
    rc, out, err = run("-t", "-n", "127.0.0.1:%d" % free_port())
    assert rc == 0
    assert out == "configuration OK\n"


def test_port_in_use():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        rc, out, err = run("-d", "-n", "127.0.0.1:%d" % port)
    assert rc == 1
    assert one_line(err), err
    assert str(port) in err
    assert out == ""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(smtpd, sig):
    c = smtpd.client()
    c.ehlo()
    c.send_message(message("before stop")[0])
    smtpd.wait_blocks(1)
    c.expect("QUIT", 221, "2.0.0")
    assert c.wait_closed()
    assert smtpd.stop(sig) == 0
    assert smtpd.log_grep(r"event=stop result=clean")
    # The listener is gone with the daemon.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", smtpd.port), timeout=2)


def test_sigint_to_the_process_group(smtpd):
    """^C in a terminal signals the whole group: still a clean stop."""
    c = smtpd.client()
    c.ehlo()
    os.killpg(smtpd.pgid, signal.SIGINT)
    check(c.reply(timeout=scaled(5)), 421, "4.3.2")
    assert smtpd.wait_exit() == 0
    assert not smtpd.log_grep(r"event=child-died")


def test_sigterm_with_many_idle_sessions(smtpd):
    clients = []
    for _ in range(20):
        c = smtpd.client()
        c.ehlo()
        clients.append(c)
    assert smtpd.stop(signal.SIGTERM) == 0
    for c in clients:
        check(c.reply(), 421, "4.3.2")
        assert c.wait_closed()


@pytest.mark.parametrize("arg,size", [("10K", 10240), ("10k", 10240),
                                      ("2M", 2 * 1024 ** 2),
                                      ("1G", 1024 ** 3), ("12345", 12345)])
def test_size_suffix(smtpd_factory, arg, size):
    d = smtpd_factory("-s", arg)
    c = d.client()
    r = c.cmd("EHLO client.example")
    assert "SIZE %d" % size in r.lines
    c.expect("MAIL FROM:<a@example.com> SIZE=%d" % (size + 1), 552, "5.3.4")
    c.expect("MAIL FROM:<a@example.com> SIZE=%d" % size, 250, "2.1.0")


def test_size_suffix_applies_to_data(smtpd_factory):
    d = smtpd_factory("-s", "1K")
    c = d.client()
    c.ehlo()
    c.send_message(b"a" * 998 + b"\r\n" + b"b" * 22 + b"\r\n")   # 1024
    c.expect("MAIL FROM:<a@example.com>", 250, "2.1.0")
    c.expect("RCPT TO:<b@example.com>", 250, "2.1.5")
    c.expect("DATA", 354)
    c.send(b"a" * 998 + b"\r\n" + b"b" * 23 + b"\r\n.\r\n")          # 1025
    check(c.reply(), 552, "5.3.4")
    assert len(d.wait_blocks(1)) == 1


def test_python_compatible_command_line(smtpd_factory, tmp_path):
    """python -m smtpd -n -c DebuggingServer localhost:PORT, as is."""
    port = free_port()
    d = smtpd_factory(args=("-d", "-n", "-c", "DebuggingServer"),
                      listen="localhost:%d" % port, wait=False)
    d.port = port
    d.start()
    c = d.client()
    c.ehlo()
    wire, lines = message("compat")
    c.send_message(wire)
    assert d.wait_blocks(1) == [debug_block(lines)]


def test_verbose_keeps_output_clean(smtpd_factory):
    d = smtpd_factory("-v")
    c = d.client()
    c.ehlo()
    wire, lines = message("verbose")
    c.send_message(wire)
    # -v may log more, never inside the printed block (stdout).
    assert d.wait_blocks(1) == [debug_block(lines)]


@ipv6_only
def test_ipv6_listener(smtpd_factory):
    d = smtpd_factory(host="::1")
    c = d.client()
    c.ehlo()
    wire, lines = message("over v6")
    c.send_message(wire)
    assert d.wait_blocks(1) == [debug_block(lines, peer="::1")]
    assert d.log_grep(r"event=connect .*client=::1 ")
    # v6 only: nothing listens on 127.0.0.1 at that port.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", d.port), timeout=2).close()


def test_unprivileged_warning_or_root(tmp_path):
    """Without -n, a non-root start says it implies -n; as root with -n
    nothing is said on stderr before the log."""
    if os.geteuid() == 0:
        d = Daemon(str(tmp_path))
        d.start()
        try:
            assert "warning" not in d.stderr()
        finally:
            problems = d.teardown()
        assert problems == []
    else:
        d = Daemon(str(tmp_path), args=("-d",))
        d.start()
        try:
            assert "-n implied" in d.stderr()
        finally:
            problems = d.teardown()
        assert problems == []


def test_foreground_log_lines_are_stamped(smtpd_factory, tmp_path):
    """Under -d each line starts with an RFC 3339 time (UTC) and its
    severity (SPEC 9), from every process; the start line names every
    listener."""
    import datetime
    p1, p2 = free_port(), free_port()
    conf = str(tmp_path / "smtpd.conf")
    with open(conf, "w") as f:
        f.write("listen on 127.0.0.1 port %d\nlisten on 127.0.0.1 port %d\n"
                % (p1, p2))
    d = smtpd_factory("-f", conf, listen="", wait=False)
    d.port = p1
    d.start()
    c = d.client()
    c.ehlo()
    c.send_message(b"Subject: stamps\r\n\r\nx\r\n")
    c.expect("QUIT", 221, "2.0.0")
    d.wait_blocks(1)
    wait_for(lambda: d.log_grep(r"session: event=disconnect") and
             d.log_grep(r"relay: event="), scaled(5), "the log lines")
    lines = d.log_lines(stamped=True)
    assert lines
    rx = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z "
                    r"(debug|info|notice|warning|error|crit) "
                    r"smtpd\[\d+\]: (parent|session|relay): event=")
    now = datetime.datetime.now(datetime.timezone.utc)
    roles = set()
    for l in lines:
        m = rx.match(l)
        assert m, l
        when = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
        when = when.replace(tzinfo=datetime.timezone.utc)
        assert abs((now - when).total_seconds()) < scaled(60), l
        roles.add(m.group(3))
    assert roles == {"parent", "session", "relay"}
    [start] = d.log_grep(r"parent: event=start .*listen=(\S+) ")
    assert start.group(1) == "127.0.0.1:%d,127.0.0.1:%d" % (p1, p2)

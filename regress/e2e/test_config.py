"""smtpd -t -f FILE (SPEC sections 3 and 4): "configuration OK" and exit
0 for a good file; for a bad one every error as "file:line: what", a
count, and exit 1.  Nothing is started either way."""
import os
import signal
import socket
import subprocess

import pytest

from harness import (SMTPD_BIN, free_port, group_members, need_tool, scaled,
                     wait_for)


def check_conf(path, *extra):
    p = subprocess.run([SMTPD_BIN, "-t", "-f", path] + list(extra),
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=scaled(10))
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def write(tmp_path, name, lines):
    p = tmp_path / name
    p.write_text("".join(l + "\n" for l in lines))
    return str(p)


def spec_sample(tmp_path):
    """The sample of SPEC section 4 with its files made in tmp_path:
    -t checks what a start would (TLS key pair, secrets, users, chroot,
    the unprivileged user), short of binding."""
    need_tool("openssl")
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-subj", "/CN=mail.example.com", "-days",
                        "2", "-keyout", key, "-out", cert],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=scaled(60))
    assert p.returncode == 0, p.stderr.decode()
    h = subprocess.run(["openssl", "passwd", "-6", "secret"],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=scaled(10)).stdout.decode().strip()
    users = write(tmp_path, "users", ["alice " + h])
    os.chmod(users, 0o600)
    secret = write(tmp_path, "upstream.secret", ["relayuser relaypass"])
    os.chmod(secret, 0o600)
    rcpt = write(tmp_path, "recipients", ["# comment", "user@example.com",
                                          "@example.org", ""])
    chroot = tmp_path / "empty"
    chroot.mkdir(mode=0o755)
    os.chmod(str(chroot), 0o755)
    user = "_smtpd" if os.geteuid() == 0 else "nobody"
    return [
        "# the SPEC's sample",
        "",
        "hostname mail.example.com             # greeting and EHLO name",
        "listen on 127.0.0.1 port 25           # repeatable",
        "listen on ::1 port 25",
        "listen on 0.0.0.0 port 465 tls        # implicit TLS",
        "listen on 0.0.0.0 port 587 starttls-required auth",
        "tls certificate %s key %s" % (cert, key),
        "mode relay                            # debug | relay | deliver",
        "upstream mail.example.net port 25 starttls",
        "upstream-auth " + secret,
        "upstream-ca " + cert,
        'deliver "/usr/local/bin/process-message"',
        "relay-domains example.net, example.org",
        "relay-recipients " + rcpt,
        "trusted-networks 127.0.0.0/8, ::1, 10.0.0.0/8",
        "users " + users,
        "user " + user,
        "chroot " + str(chroot),
        "queue /var/spool/smtpd",
        "workers 2",
        "max-sessions 4096                            # per worker",
        "max-sessions-per-ip 50",
        "max-message-size 35M",
        "max-recipients 100",
        "timeout 300s",
        "queue-lifetime 4d",
        "queue-retry 30s",
        "x-peer-header yes",
    ]


def test_good_file(tmp_path):
    path = write(tmp_path, "good.conf", spec_sample(tmp_path))
    rc, out, err = check_conf(path)
    assert (rc, out, err) == (0, "configuration OK\n", "")


def test_good_file_deliver_and_quoting(tmp_path):
    path = write(tmp_path, "deliver.conf", [
        "mode deliver",
        'deliver "/bin/true --flag \'two words\' \\"q\\""',
        "deliver-timeout 3s",
        "deliver-max 4",
        "\tqueue /tmp/q   # tab before, comment after",
        "x-peer-header no",
        "queue-retry 2s",
        "queue-lifetime 30s",
        "relay-domains a.example,b.example,   c.example.",
        "relay-domains d.example",
        "trusted-networks 192.0.2.0/24",
        "trusted-networks 2001:db8::/32",
        "smtputf8 yes",
    ])
    rc, out, err = check_conf(path)
    assert (rc, out, err) == (0, "configuration OK\n", "")


def test_empty_file(tmp_path):
    path = write(tmp_path, "empty.conf", [])
    assert check_conf(path) == (0, "configuration OK\n", "")


# (line, error text after "file:line: ")
BAD = [
    ("queue relative/dir", "queue: relative/dir is not an absolute path"),
    ("workers 0", "workers: 0 is too small (1 to 256)"),
    ("workers 1000", None),     # too large
    ("queue-retry 5x", "queue-retry: 5x is not a duration (30s, 5m, 1h, "
     "4d)"),
    ("queue-lifetime 0", None),
    ("deliver-timeout 0s", "deliver-timeout: 0s is not a duration (30s, 5m, "
     "1h, 4d)"),
    ("relay-domains exa_mple.net", "relay-domains: exa_mple.net is not a "
     "domain"),
    ("trusted-networks 10.0.0.1/8", "trusted-networks: 10.0.0.1/8 is not an "
     "address or network (host bits must be zero)"),
    ("trusted-networks 10.0.0.0/33", None),
    ("trusted-networks example.net", None),
    ("x-peer-header maybe", "x-peer-header: expected yes or no"),
    ("bogus-keyword 1", "unknown keyword bogus-keyword"),
    ("mode proxy", "mode: proxy is not debug, relay or deliver"),
    ('deliver "unterminated', "unterminated quote"),
    ("deliver relative/prog", "deliver: the program must be an absolute "
     "path"),
    ("listen on 127.0.0.1 port 0", None),
    ("listen on not-an-address port 25", None),
    ("listen at 127.0.0.1", None),
    ("upstream mail.example.net port 99999", None),
    ("upstream mail.example.net frobnicate", None),
    ("max-message-size lots", None),
    ("max-recipients 0", None),
    ("timeout 5w", None),
    ("hostname bad_host!", None),
    ("workers", "workers: wrong number of arguments"),
    ("workers 1 2", "workers: wrong number of arguments"),
    ("chroot var/empty", None),
    ("relay-recipients /nonexistent/smtpd-e2e/recipients",
     "relay-recipients: /nonexistent/smtpd-e2e/recipients: No such file or "
     "directory"),
]


@pytest.mark.parametrize("line,message", BAD, ids=[b[0] for b in BAD])
def test_one_bad_line(tmp_path, line, message):
    """Each error alone: named with file and line (line 3, after a
    comment and a good line), one error counted, exit 1."""
    path = write(tmp_path, "bad.conf", ["# a comment",
                                        "relay-domains example.net", line,
                                        "trusted-networks 127.0.0.0/8"])
    rc, out, err = check_conf(path)
    assert rc == 1, (out, err)
    assert "configuration OK" not in out
    lines = err.splitlines()
    assert lines[-1] == "smtpd: 1 error in the configuration", err
    assert len(lines) == 2, err
    prefix = "%s:3: " % path
    assert lines[0].startswith(prefix), err
    if message is not None:
        assert lines[0] == prefix + message
    else:
        assert len(lines[0]) > len(prefix) + 5


def test_many_errors_each_with_its_line(tmp_path):
    """Parsing goes on after an error: every bad line is reported, in
    order, with its own line number; good lines in between are not."""
    good = ["relay-domains example.net", "trusted-networks 127.0.0.0/8",
            "listen on 127.0.0.1 port 2525"]
    lines = ["# errors on even lines"]
    want = []
    bad = [b for b in BAD if b[1] is not None and
           b[0].split()[0] not in ("workers", "deliver")]
    for i, (line, message) in enumerate(bad):
        lines.append(good[i % len(good)] if i < len(good) else "# good")
        lines.append(line)
        want.append((len(lines), message))
    path = write(tmp_path, "bad.conf", lines)
    rc, out, err = check_conf(path)
    assert rc == 1
    assert out == ""
    got = err.splitlines()
    assert got[-1] == "smtpd: %d errors in the configuration" % len(want)
    assert got[:-1] == ["%s:%d: %s" % (path, n, m) for n, m in want]


def test_keyword_given_twice(tmp_path):
    path = write(tmp_path, "twice.conf", ["mode relay", "queue /tmp/q",
                                          "mode debug", "workers 2",
                                          "workers 3"])
    rc, out, err = check_conf(path)
    assert rc == 1
    assert err.splitlines() == ["%s:3: mode given twice" % path,
                                "%s:5: workers given twice" % path,
                                "smtpd: 2 errors in the configuration"]


def test_bad_relay_recipients_file(tmp_path):
    """Errors inside the relay-recipients file name that file and its
    lines."""
    rcpt = write(tmp_path, "recipients", ["ok@example.com",
                                          "not an address",
                                          "@example.org",
                                          "a@b@example.com",
                                          "plain-word"])
    path = write(tmp_path, "r.conf", ["relay-recipients " + rcpt])
    rc, out, err = check_conf(path)
    assert rc == 1
    got = err.splitlines()
    assert got[-1].startswith("smtpd: ") and \
        got[-1].endswith(" in the configuration"), err
    assert got[0] == "%s:2: one address or @domain a line" % rcpt
    assert got[1] == "%s:4: a@b@example.com is not an address or @domain" \
        % rcpt
    assert got[2] == "%s:5: plain-word is not an address or @domain" % rcpt


def test_mode_deliver_without_program(tmp_path):
    path = write(tmp_path, "d.conf", ["mode deliver", "queue /tmp/q"])
    rc, out, err = check_conf(path)
    assert rc == 1
    got = err.splitlines()
    assert len(got) == 2, err
    assert got[0].startswith(path + ":")
    assert "deliver" in got[0]
    assert got[1] == "smtpd: 1 error in the configuration"


def test_missing_file(tmp_path):
    path = str(tmp_path / "nonexistent.conf")
    rc, out, err = check_conf(path)
    assert rc == 1
    assert out == ""
    assert err.splitlines() == ["%s: No such file or directory" % path,
                                "smtpd: 1 error in the configuration"], err


def test_bad_file_does_not_start(tmp_path):
    """Without -t a bad file stops the start: exit 1, the errors said,
    nothing listening."""
    path = write(tmp_path, "bad.conf", ["workers 0"])
    port = free_port()
    p = subprocess.Popen([SMTPD_BIN, "-d", "-n", "-f", path,
                          "127.0.0.1:%d" % port], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    accepted = []

    def probe():
        # Until it exits, the port it was given must refuse connections.
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                accepted.append(True)
        except OSError:
            pass
        return p.poll() is not None
    try:
        wait_for(probe, scaled(10), "the refused start to exit",
                 interval=0.005)
        out, err = p.communicate(timeout=scaled(5))
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode == 1
    assert err.decode().splitlines() == [
        "%s:1: workers: 0 is too small (1 to 256)" % path], err
    assert out == b""
    assert not accepted, "a connection to port %d was accepted" % port
    assert group_members(p.pid) == [], "a process of it is left"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), scaled(1)).close()


@pytest.mark.parametrize("lines,lineno,words", [
    (["# users", "users /nonexistent/smtpd-e2e/users",
      "listen on 127.0.0.1 port 2525 auth"], 2, "users"),
    (["", "", "tls certificate /nonexistent/c.pem key /nonexistent/k.pem"],
     3, "tls"),
    (["mode relay", "upstream-auth /nonexistent/smtpd-e2e/secret"], 2,
     "upstream-auth"),
    (["listen on 127.0.0.1 port 2465 tls"], 1, "listen"),
])
def test_start_checks_name_the_line(tmp_path, lines, lineno, words):
    """What -t finds beyond the syntax (files it reads, settings that go
    together) is named by the file and line of its keyword too."""
    path = write(tmp_path, "s.conf", lines)
    rc, out, err = check_conf(path, "-n")
    assert rc == 1, (out, err)
    last = err.splitlines()[-1]
    assert last.startswith("%s:%d: %s" % (path, lineno, words)), err

"""deliver mode (SPEC section 6): the process_message hook.  The parent
runs the program once per message, as the unprivileged user (never as
root), without a shell, with the message on standard input and the
envelope in the environment; exit 0 delivered, 75 retried, anything
else (or a time-out) failed, with a DSN that is itself handed to the
program as a message from <>."""
import base64
import json
import os
import random
import re
import resource
import stat
import subprocess

import pytest

from harness import alive, check, group_members, scaled, wait_for
from skips import need_root, need_user
from relay_harness import (DELIVER_USER, IS_ROOT,  # noqa
                           PROCESS_MESSAGE, PYTHON, QUEUE_USER,
                           SEND_CLASSIC, classic_message, make_message,
                           queue_files, relay_conf, relay_factory,
                           smtp_send, smtpd_pw, upstream_factory, world)

# relay_factory, upstream_factory and world are fixtures, imported so
# that pytest finds them in this module.

# A hook that records each run as STATE/<queue id>-<n>.json: argv, the
# whole environment, ids (and what `id -u` says), standard input; then
# behaves as its second argument says.
HOOK = r'''#!/usr/bin/env python3
import base64, json, os, resource, subprocess, sys, time
state, how = sys.argv[1], sys.argv[2]
qid = os.environ.get("SMTPD_QUEUE_ID", "none")
data = sys.stdin.buffer.read()
n = 0
while os.path.exists(os.path.join(state, "%s-%d.json" % (qid, n))):
    n += 1
idu = subprocess.run(["id", "-u"], capture_output=True).stdout.decode()
rec = {"argv": sys.argv, "env": dict(os.environ), "uid": os.getuid(),
       "euid": os.geteuid(), "gid": os.getgid(), "egid": os.getegid(),
       "groups": os.getgroups(), "id_u": idu.strip(), "pid": os.getpid(),
       "pgid": os.getpgid(0), "sid": os.getsid(0),
       "stdin": base64.b64encode(data).decode(),
       "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)}
tmp = os.path.join(state, ".%s-%d.tmp" % (qid, n))
with open(tmp, "w") as f:
    json.dump(rec, f)
os.rename(tmp, os.path.join(state, "%s-%d.json" % (qid, n)))
print("HOOK run qid=%s n=%d from=<%s> to=%s" % (
    qid, n, os.environ.get("SMTPD_MAIL_FROM"),
    os.environ.get("SMTPD_RCPT_TO")), flush=True)
if how == "ok" or os.environ.get("SMTPD_MAIL_FROM") == "":
    sys.exit(0)
if how == "tempfail-once":
    if n == 0:
        sys.stderr.write("try later, please\nsecond line\n")
        sys.exit(75)
    sys.exit(0)
if how == "fail":
    sys.stderr.write("no such user here\n")
    sys.exit(1)
if how == "slow":
    t0 = time.time()
    time.sleep(0.3)
    with open(os.path.join(state, "%s-span" % qid), "w") as f:
        f.write("%f %f" % (t0, time.time()))
    sys.exit(0)
if how == "sleep":
    # A grandchild too: the whole group goes at the time-out.
    child = subprocess.Popen(["sleep", "60"])
    with open(os.path.join(state, "%s-sleeper" % qid), "w") as f:
        f.write(str(child.pid))
    time.sleep(60)
    sys.exit(0)
sys.exit(3)
'''

ENVELOPE_ENV = {"PATH", "SMTPD_PEER", "SMTPD_MAIL_FROM", "SMTPD_RCPT_TO",
                "SMTPD_HELO", "SMTPD_QUEUE_ID"}


class Hook:
    def __init__(self, world):
        self.state = world.sub("state", 0o777)
        self.path = world.file("hook.py", HOOK, 0o755)

    def command(self, how):
        return '"%s %s %s"' % (self.path, self.state, how)

    def runs(self, qid=None):
        out = []
        for name in sorted(os.listdir(self.state)):
            if name.endswith(".json") and (qid is None or
                                           name.startswith(qid + "-")):
                with open(os.path.join(self.state, name)) as f:
                    rec = json.load(f)
                rec["stdin"] = base64.b64decode(rec["stdin"])
                out.append(rec)
        return out

    def wait_runs(self, qid, n, timeout=None):
        return wait_for(lambda: (lambda r: r if len(r) >= n else None)(
            self.runs(qid)), timeout or scaled(15),
            "%d runs of the hook for %s" % (n, qid))


def deliver_conf(world, hook, how, lines=()):
    return relay_conf(world, lines=["mode deliver",
                                    "deliver " + hook.command(how)] +
                      list(lines))


def reachable_by_smtpd(path):
    """Whether the unprivileged user can execute path: every directory
    above it searchable, the file readable and executable by others."""
    p = os.path.abspath(path)
    st = os.stat(p)
    if not (st.st_mode & stat.S_IROTH and st.st_mode & stat.S_IXOTH):
        return False
    d = os.path.dirname(p)
    for _ in range(100):
        if not os.stat(d).st_mode & stat.S_IXOTH:
            return False
        if d == "/":
            return True
        d = os.path.dirname(d)
    return False


def expected_uid():
    if IS_ROOT:
        pw = smtpd_pw(DELIVER_USER)
        assert pw is not None, "no user %s (make user)" % DELIVER_USER
        return pw.pw_uid, pw.pw_gid
    return os.getuid(), os.getgid()


# --------------------------------------------------------------------------

def test_process_message_example(world, relay_factory):
    """examples/process_message.py with the classic client prints what
    Python's smtpd documentation example printed."""
    hook = PROCESS_MESSAGE
    if not reachable_by_smtpd(hook):
        # The checkout is not readable by others: the same file elsewhere.
        with open(hook) as f:
            hook = world.file("process_message.py", f.read(), 0o755)
    conf, queue = relay_conf(world)
    d = relay_factory("-f", conf, "-c", "deliver", second=hook)
    p = subprocess.run([PYTHON, SEND_CLASSIC, "127.0.0.1", str(d.port)],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=scaled(30))
    assert p.returncode == 0, p.stderr.decode()
    qid = p.stderr.decode().rsplit("Ok: queued as ", 1)[1][:16]
    d.wait_log(r"relay: event=removed queue_id=%s$" % qid)
    out = d.stdout()
    m = re.match(r"\AReceiving message from: \('127\.0\.0\.1', (\d+)\)\n"
                 r"Message addressed from: author@example\.com\n"
                 r"Message addressed to  : \['recipient@example\.com'\]\n"
                 r"Message length        : (\d+)\n\Z", out)
    assert m, out
    # Python's smtpd gave process_message the lines as received (CRLF
    # cut, dot-stuffing undone: none here) joined with LF, the last line
    # end dropped: that length, of what the client sent, must be printed.
    sent = classic_message()
    assert int(m.group(2)) == len(b"\n".join(sent.split(b"\r\n")[:-1]))
    # The peer's port is the client's (its session logged it).
    port = m.group(1)
    assert d.log_grep(r"session: event=connect session=\S+ "
                      r"client=127\.0\.0\.1 port=%s$" % port)
    d.wait_log(r"parent: event=deliver-exit queue_id=%s pid=\d+ "
               r"result=delivered stderr=\"\"" % qid)
    d.wait_log(r"relay: event=attempt queue_id=%s transport=deliver "
               r"result=delivered" % qid)
    assert queue_files(queue) == []


@pytest.mark.parametrize("args", [("-d",), ("-d", "-n")],
                         ids=["privsep", "no-drop"])
def test_hook_user_environment_and_input(world, relay_factory, args):
    """The hook runs as _smtpdeliver (never uid 0, even with -n), in its own
    session, with argv as configured, only the envelope and PATH in its
    environment, and the message as received on standard input."""
    hook = Hook(world)
    conf, queue = deliver_conf(world, hook, "ok")
    d = relay_factory("-f", conf, args=args,
                      env={"SMTPD_E2E_CANARY": "must-not-leak"})
    c = d.client()
    c.ehlo("helo.example")
    body = (b"From: <a@example.com>\r\nSubject: stuffed\r\n\r\n"
            b".leading dot\r\n..two dots\r\nlast line\r\n")
    stuffed = body.replace(b"\r\n.", b"\r\n..")
    c.expect("MAIL FROM:<a@example.com>", 250, "2.1.0")
    c.expect("RCPT TO:<one@example.net>", 250, "2.1.5")
    c.expect("RCPT TO:<two@example.org>", 250, "2.1.5")
    c.expect("DATA", 354)
    c.send(stuffed + b".\r\n")
    r = check(c.reply(), 250, "2.0.0")
    qid = r.message.rsplit(" ", 1)[1]
    [run] = hook.wait_runs(qid, 1)
    uid, gid = expected_uid()
    assert run["uid"] == run["euid"] == uid
    assert run["gid"] == run["egid"] == gid
    assert run["id_u"] == str(uid)
    if IS_ROOT:
        assert uid != 0 and run["id_u"] != "0"
        assert run["groups"] in ([gid], [])
    assert run["argv"] == [hook.path, hook.state, "ok"]
    env = run["env"]
    # Python itself may add LC_CTYPE (PEP 538); nothing else is allowed.
    assert set(env) - {"LC_CTYPE"} == ENVELOPE_ENV, sorted(env)
    assert env["SMTPD_MAIL_FROM"] == "a@example.com"
    assert env["SMTPD_RCPT_TO"] == "one@example.net,two@example.org"
    assert env["SMTPD_HELO"] == "helo.example"
    assert env["SMTPD_QUEUE_ID"] == qid
    assert env["SMTPD_PEER"] == "127.0.0.1:%d" % c.local_port
    assert "/" in env["PATH"]
    assert run["stdin"] == body
    # Its own session and process group: a time-out kills all of it.
    assert run["sid"] == run["pid"] == run["pgid"]
    d.wait_log(r"relay: event=removed queue_id=%s$" % qid)
    assert queue_files(queue) == []


# A hook that tries what the hook of issue 9 did: read the envelopes of
# the queue and write into it, from a path and from its own directory.
PROBE = r'''#!/usr/bin/env python3
import json, os, sys
state, queue = sys.argv[1], sys.argv[2]
sys.stdin.buffer.read()
res = {"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
       "groups": os.getgroups(), "cwd": os.getcwd()}


def attempt(name, fn):
    try:
        res[name] = ["ok", repr(fn())[:200]]
    except OSError as e:
        res[name] = ["error", e.errno]


def read_one():
    names = [n for n in os.listdir(os.path.join(queue, "queue"))]
    with open(os.path.join(queue, "queue", names[0]), "rb") as f:
        return f.read()


attempt("list_queue", lambda: os.listdir(queue))
attempt("list_queue_queue", lambda: os.listdir(os.path.join(queue, "queue")))
attempt("read_envelope", read_one)
attempt("create", lambda: open(os.path.join(queue, "queue", "planted"),
                               "w").close())
attempt("create_tmp", lambda: open(os.path.join(queue, "tmp", "planted"),
                                   "w").close())
attempt("create_top", lambda: open(os.path.join(queue, "planted"),
                                   "w").close())
attempt("create_cwd", lambda: open("planted-in-cwd", "w").close())
# Whole or not at all: the test reads it as soon as it is there.
with open(os.path.join(state, "probe.json.tmp"), "w") as f:
    json.dump(res, f)
os.rename(os.path.join(state, "probe.json.tmp"),
          os.path.join(state, "probe.json"))
sys.exit(0)
'''


def test_hook_cannot_touch_the_queue(world, relay_factory):
    """The deliver program runs as deliver-user in /: it can neither list
    nor read the queue, nor create a file in it (it once ran as the
    queue's owner and could do all of that)."""
    # Without root the hook runs as the caller: nothing to check.
    need_root()
    deliver_pw, queue_pw = need_user(DELIVER_USER), need_user(QUEUE_USER)
    state = world.sub("probe", 0o777)
    probe = world.file("probe.py", PROBE, 0o755)
    queue = os.path.join(world.path, "queue")
    conf, queue = relay_conf(world, queue, lines=[
        "mode deliver", 'deliver "%s %s %s"' % (probe, state, queue)])
    d = relay_factory("-f", conf, args=("-d",))
    # A second message waits in the queue while the first is delivered.
    c = d.client()
    c.ehlo()
    c.expect("MAIL FROM:<a@example.com>", 250, "2.1.0")
    c.expect("RCPT TO:<b@example.net>", 250, "2.1.5")
    c.expect("DATA", 354)
    c.send(b"Subject: probe\r\n\r\nbody\r\n.\r\n")
    check(c.reply(), 250, "2.0.0")
    path = os.path.join(state, "probe.json")
    wait_for(lambda: os.path.exists(path), scaled(15), "the probe's report")
    with open(path) as f:
        res = json.load(f)
    assert res["uid"] == res["euid"] == deliver_pw.pw_uid, res
    assert res["gid"] == deliver_pw.pw_gid, res
    assert queue_pw.pw_gid not in res["groups"], res
    assert res["cwd"] == "/", res
    for what in ("list_queue", "list_queue_queue", "read_envelope",
                 "create", "create_tmp", "create_top", "create_cwd"):
        assert res[what][0] == "error", (what, res[what])
    assert res["list_queue"][1] == 13, res    # EACCES, the queue's own
    st = os.stat(queue)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (queue_pw.pw_uid, 0o700)
    for sub in ("", "queue", "tmp"):
        assert not os.path.exists(os.path.join(queue, sub, "planted"))
    assert not os.path.exists("/planted-in-cwd")


def test_no_shell_sees_the_envelope(world, relay_factory):
    """Shell syntax in the envelope ($(...), backquotes, ;) is never run:
    no file appears, and the hook gets the literal text."""
    hook = Hook(world)
    conf, queue = deliver_conf(world, hook, "ok")
    d = relay_factory("-f", conf)
    # Short (a local part has at most 64 octets) and unique to the test.
    tag = "/tmp/sp%08x" % random.getrandbits(32)
    paths = [tag + s for s in ("rs", "rb", "rc", "ra", "f", "h")]
    for p in paths:
        assert not os.path.exists(p)
    rcpts = ['"$(touch %s)"@example.net' % paths[0],
             '"`touch %s`"@example.net' % paths[1],
             '"x;touch %s;"@example.net' % paths[2],
             # backquote, $, { } and / are atext: no quotes needed.
             "`touch${IFS}%s`@example.net" % paths[3]]
    sender = '"$(touch %s)"@example.com' % paths[4]
    helo = "$(touch${IFS}%s)" % paths[5]
    c = d.client()
    c.ehlo(helo)
    c.expect("MAIL FROM:<%s>" % sender, 250, "2.1.0")
    for r in rcpts:
        c.expect("RCPT TO:<%s>" % r, 250, "2.1.5")
    c.expect("DATA", 354)
    c.send(make_message(1, "inject") + b".\r\n")
    qid = check(c.reply(), 250, "2.0.0").message.rsplit(" ", 1)[1]
    [run] = hook.wait_runs(qid, 1)
    d.wait_log(r"relay: event=removed queue_id=%s$" % qid)
    env = run["env"]
    assert env["SMTPD_RCPT_TO"] == ",".join(rcpts)
    assert env["SMTPD_MAIL_FROM"] == sender
    assert env["SMTPD_HELO"] == helo
    assert run["argv"] == [hook.path, hook.state, "ok"]
    for p in paths:
        assert not os.path.exists(p), "%s was created: a shell ran" % p


def test_tempfail_then_success_delivers_once(world, relay_factory):
    """Exit 75 with a message on stderr: deferred, the first stderr line
    logged; the retry (after queue-retry) exits 0: delivered, exactly
    once, no DSN."""
    hook = Hook(world)
    conf, queue = deliver_conf(world, hook, "tempfail-once",
                               ["queue-retry 1s"])
    d = relay_factory("-f", conf)
    qid = smtp_send(d.port, "sender@example.com", ["rcpt@example.net"],
                    make_message(1, "tempfail"))
    d.wait_log(r"parent: event=deliver-exit queue_id=%s pid=\d+ "
               r"result=deferred stderr=\"try later, please\" "
               r"reason=\"deliver program exit 75: try later, please\"$"
               % qid)
    d.wait_log(r"relay: event=attempt queue_id=%s transport=deliver "
               r"result=deferred " % qid)
    d.wait_log(r"relay: event=attempt queue_id=%s transport=deliver "
               r"result=delivered " % qid, timeout=scaled(15))
    d.wait_log(r"relay: event=removed queue_id=%s$" % qid)
    runs = hook.runs(qid)
    assert len(runs) == 2
    assert runs[0]["stdin"] == runs[1]["stdin"] == make_message(1,
                                                                "tempfail")
    assert len(d.log_grep(r"event=deliver-start queue_id=%s " % qid)) == 2
    assert not d.log_grep(r"event=bounce ")
    assert queue_files(queue) == []
    assert hook.runs() == runs
    assert d.stdout().count("HOOK run qid=%s " % qid) == 2


def test_hook_gets_the_descriptor_limit_of_before(world, relay_factory):
    """The parent raises its soft descriptor limit (it may have a
    thousand workers); the program it runs gets the one it was started
    with, as a service manager sets it."""
    hook = Hook(world)
    conf, _ = deliver_conf(world, hook, "ok")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 1024:
        pytest.skip("a hard descriptor limit of %d" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        d = relay_factory("-f", conf)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    with open("/proc/%d/limits" % d.pid) as f:
        line = [x for x in f if x.startswith("Max open files")][0]
    assert int(line.split()[3]) == hard or hard == resource.RLIM_INFINITY
    qid = smtp_send(d.port, "sender@example.com", ["rcpt@example.net"],
                    make_message(1, "nofile"))
    [run] = hook.wait_runs(qid, 1)
    assert run["nofile"] == [1024, hard]


def dsn_of(hook, bqid, sender, rcpt):
    [run] = hook.wait_runs(bqid, 1)
    env = run["env"]
    assert env["SMTPD_MAIL_FROM"] == ""
    assert env["SMTPD_RCPT_TO"] == sender
    text = run["stdin"].decode("utf-8", "replace")
    assert "Content-Type: multipart/report; report-type=delivery-status" \
        in text
    assert "\r\nTo: <%s>\r\n" % sender in text
    assert "Final-Recipient: rfc822; %s\r\n" % rcpt in text
    assert "Action: failed\r\n" in text
    assert re.search(r"\r\nStatus: 5\.\d{1,3}\.\d{1,3}\r\n", text), text
    return text


def test_exit_1_fails_and_the_dsn_goes_to_the_hook(world, relay_factory):
    hook = Hook(world)
    conf, queue = deliver_conf(world, hook, "fail")
    d = relay_factory("-f", conf)
    qid = smtp_send(d.port, "sender@example.com", ["rcpt@example.net"],
                    make_message(1, "fail"))
    d.wait_log(r"parent: event=deliver-exit queue_id=%s pid=\d+ "
               r"result=failed stderr=\"no such user here\" "
               r"reason=\"deliver program exit 1: no such user here\"$"
               % qid)
    d.wait_log(r"relay: event=attempt queue_id=%s transport=deliver "
               r"result=failed " % qid)
    bqid = d.wait_log(r"relay: event=bounce queue_id=(\S+) original_queue_id=%s "
                      r"to=<sender@example\.com>$" % qid)[0].group(1)
    text = dsn_of(hook, bqid, "sender@example.com", "rcpt@example.net")
    assert "no such user here" in text
    assert "Message-ID: <fail-1@test.example>" in text
    d.wait_log(r"relay: event=removed queue_id=%s$" % bqid)
    d.wait_log(r"relay: event=removed queue_id=%s$" % qid)
    assert len(hook.runs(qid)) == 1
    assert queue_files(queue) == []


def test_failing_null_sender_gets_no_dsn(world, relay_factory):
    """A hook that fails everything; the message from <> fails and no
    DSN is made (nor a DSN of a DSN)."""
    script = world.file("fail-all.sh", "#!/bin/sh\n"
                        "cat > /dev/null\n"
                        "echo \"HOOK fail $SMTPD_QUEUE_ID\"\n"
                        "echo refused >&2\n"
                        "exit 69\n", 0o755)
    conf, queue = relay_conf(world, lines=["mode deliver",
                                           "deliver " + script])
    d = relay_factory("-f", conf)
    qid = smtp_send(d.port, "", ["rcpt@example.net"],
                    make_message(1, "null"))
    d.wait_log(r"relay: event=attempt queue_id=%s transport=deliver "
               r"result=failed reply=\"deliver program exit 69: refused\""
               % qid)
    d.wait_log(r"relay: event=removed queue_id=%s$" % qid)
    assert not d.log_grep(r"event=bounce queue_id")
    # A sentinel from a real sender: it bounces; its DSN fails too, and
    # no DSN of the DSN follows.
    qid2 = smtp_send(d.port, "s@example.com", ["rcpt@example.net"],
                     make_message(2, "real"))
    bqid = d.wait_log(r"relay: event=bounce queue_id=(\S+) original_queue_id=%s "
                      % qid2)[0].group(1)
    d.wait_log(r"relay: event=removed queue_id=%s$" % bqid)
    d.wait_log(r"relay: event=removed queue_id=%s$" % qid2)
    assert len(d.log_grep(r"event=bounce queue_id")) == 1
    assert d.stdout().count("HOOK fail ") == 3
    assert queue_files(queue) == []


def test_hook_killed_after_deliver_timeout(world, relay_factory):
    """A hook that sleeps 60s with deliver-timeout 2s: killed with all
    its process group (event=deliver-timeout), counted failed, bounced."""
    hook = Hook(world)
    conf, queue = deliver_conf(world, hook, "sleep",
                               ["deliver-timeout 2s"])
    d = relay_factory("-f", conf)
    qid = smtp_send(d.port, "sender@example.com", ["rcpt@example.net"],
                    make_message(1, "sleep"))
    start = d.wait_log(r"parent: event=deliver-start queue_id=%s pid=(\d+) "
                       % qid)[0]
    pid = int(start.group(1))
    sleeper_file = os.path.join(hook.state, "%s-sleeper" % qid)
    sleeper = int(wait_for(lambda: os.path.exists(sleeper_file) and
                           open(sleeper_file).read(), scaled(10),
                           "the hook's child"))
    d.wait_log(r"parent: event=deliver-timeout queue_id=%s pid=%d "
               r"action=killed$" % (qid, pid), timeout=scaled(10))
    d.wait_log(r"parent: event=deliver-exit queue_id=%s pid=%d "
               r"result=failed .*reason=\"deliver program killed after 2s\""
               % (qid, pid))
    d.wait_log(r"relay: event=attempt queue_id=%s transport=deliver "
               r"result=failed " % qid)
    wait_for(lambda: not alive(pid) and not alive(sleeper) and
             not group_members(pid), scaled(5), "the hook's group to die")
    bqid = d.wait_log(r"relay: event=bounce queue_id=(\S+) original_queue_id=%s "
                      r"to=<sender@example\.com>$" % qid)[0].group(1)
    text = dsn_of(hook, bqid, "sender@example.com", "rcpt@example.net")
    assert "killed after 2s" in text
    d.wait_log(r"relay: event=removed queue_id=%s$" % qid)
    d.wait_log(r"relay: event=removed queue_id=%s$" % bqid)
    assert queue_files(queue) == []


def test_stop_leaves_no_deliver_program_behind(world, relay_factory):
    """SIGTERM while a hook runs: when the daemon has exited, the hook
    (in a session of its own, out of the daemon's process group) is gone
    too; nobody would enforce deliver-timeout on it any more."""
    hook = Hook(world)
    conf, queue = deliver_conf(world, hook, "sleep",
                               ["deliver-timeout 30s"])
    d = relay_factory("-f", conf)
    qid = smtp_send(d.port, "sender@example.com", ["rcpt@example.net"],
                    make_message(1, "stop"))
    pid = int(d.wait_log(r"parent: event=deliver-start queue_id=%s "
                         r"pid=(\d+) " % qid)[0].group(1))
    sleeper_file = os.path.join(hook.state, "%s-sleeper" % qid)
    sleeper = int(wait_for(lambda: os.path.exists(sleeper_file) and
                           open(sleeper_file).read(), scaled(10),
                           "the hook's child"))
    try:
        assert d.stop() == 0
        try:
            wait_for(lambda: not alive(pid) and not alive(sleeper),
                     scaled(5), "the hook to be gone after the stop")
        except AssertionError:
            raise AssertionError(
                "deliver program %d (and its child %d) still running after "
                "the daemon exited: %s" % (pid, sleeper, "\n".join(
                    d.log_lines()[-8:])))
    finally:
        for p in (pid, sleeper):
            if alive(p):
                os.kill(p, 9)
    assert d.log_grep(r"parent: event=deliver-killed queue_id=%s pid=%d "
                      r"reason=stop$" % (qid, pid))
    # The message was not delivered: it is still queued for the next run.
    assert any(qid in f for f in queue_files(queue))


def test_deliver_max_one_runs_one_at_a_time(world, relay_factory):
    """deliver-max 1: three messages, one program at a time."""
    hook = Hook(world)
    conf, queue = deliver_conf(world, hook, "slow", ["deliver-max 1"])
    d = relay_factory("-f", conf)
    qids = [smtp_send(d.port, "s@example.com", ["r@example.net"],
                      make_message(i, "max")) for i in range(3)]
    for q in qids:
        d.wait_log(r"relay: event=removed queue_id=%s$" % q)
    spans = []
    for q in qids:
        with open(os.path.join(hook.state, "%s-span" % q)) as f:
            spans.append(tuple(float(x) for x in f.read().split()))
    spans.sort()
    for a, b in zip(spans, spans[1:]):
        assert a[1] <= b[0], "two programs ran at once: %r" % spans
    assert queue_files(queue) == []


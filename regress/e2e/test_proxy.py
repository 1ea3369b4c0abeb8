"""Behind a load balancer (SPEC section 13): `listen ... proxy-from`.

A raw client sends PROXY v1 and v2 headers on loopback (listed): the
header's address is the client's in X-Peer, Received:, the log, the
relay rules and the per-address limits.  A source not listed, a
malformed header and a missing one (5 s) are closed before any SMTP.
Then the real HAProxy (Debian's haproxy) with send-proxy-v2 and
send-proxy in front of two instances, clients in a network namespace at
10.254.x.y, and a rolling restart during 1,000 messages.
"""
import os
import re
import signal
import smtplib
import socket
import struct
import subprocess
import threading
import time

import pytest

from harness import check, free_port, scaled, wait_for
from skips import need_tool
from relay_harness import (IS_ROOT, default_args, make_message,  # noqa
                           message_id, netns, relay_conf, relay_factory,
                           split_received, upstream_factory, with_x_peer,
                           world)

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src, dst="127.0.0.1", sport=40000, dport=25):
    fam = "TCP6" if ":" in src else "TCP4"
    dst = "::1" if fam == "TCP6" and dst == "127.0.0.1" else dst
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport,
                                           dport)).encode()


def v2(src=None, dst="127.0.0.1", sport=40000, dport=25, tlvs=b""):
    """A v2 header: PROXY with src (TCP4 or TCP6), or LOCAL if None."""
    if src is None:
        return V2_SIG + b"\x20\x00" + struct.pack("!H", len(tlvs)) + tlvs
    if ":" in src:
        fam, af = 0x21, socket.AF_INET6
        dst = "::1" if dst == "127.0.0.1" else dst
    else:
        fam, af = 0x11, socket.AF_INET
    body = (socket.inet_pton(af, src) + socket.inet_pton(af, dst) +
            struct.pack("!HH", sport, dport) + tlvs)
    return V2_SIG + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


class Raw:
    """Exact bytes out, lines in, on a blocking socket with a time-out."""

    def __init__(self, port, host="127.0.0.1", src=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(scaled(10))
        if src:
            self.sock.bind((src, 0))
        self.sock.connect((host, port))
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def reply(self):
        """One complete reply (its last line); b"" at end of file."""
        while True:
            lines = self.buf.split(b"\r\n")
            for i, l in enumerate(lines[:-1]):
                if len(l) >= 4 and l[3:4] == b" ":
                    self.buf = b"\r\n".join(lines[i + 1:])
                    return l
            d = self.sock.recv(65536)
            if not d:
                return b""
            self.buf += d

    def eof_at_once(self):
        """True if the server closes without sending a byte."""
        try:
            d = self.sock.recv(65536)
        except ConnectionResetError:
            return True
        return d == b""

    def close(self):
        self.sock.close()


def send_through(c, rcpt, data):
    """EHLO, MAIL, RCPT and DATA on a greeted Raw; the last reply."""
    c.send(b"EHLO raw.example\r\n")
    assert c.reply().startswith(b"250 ")
    c.send(b"MAIL FROM:<a@example.org>\r\n")
    assert c.reply().startswith(b"250 ")
    c.send(b"RCPT TO:<%s>\r\n" % rcpt.encode())
    r = c.reply()
    if not r.startswith(b"250 "):
        return r
    c.send(b"DATA\r\n")
    assert c.reply().startswith(b"354 ")
    c.send(data + b".\r\n")
    return c.reply()


def start_relay(relay_factory, world, up, lines, name="smtpd.conf",
                queue=None):
    """A relay-mode daemon: a plain listener (waited for) and the
    proxy-from ones of lines.  (daemon, plain port)."""
    plain = free_port()
    conf, _ = relay_conf(world, queue=queue, name=name, lines=[
        "upstream 127.0.0.1 port %d" % up.port,
        "listen on 127.0.0.1 port %d" % plain] + list(lines))
    d = relay_factory("-f", conf, "-c", "relay", listen="", wait=False)
    d.port = plain
    d.start()
    return d, plain


@pytest.fixture
def proxied(relay_factory, world, upstream_factory):
    up = upstream_factory()
    ports = {"lo": free_port(), "other": free_port(), "limit": free_port()}
    d, plain = start_relay(relay_factory, world, up, [
        "relay-domains example.net",
        "trusted-networks 192.0.2.0/24",
        "max-sessions-per-ip 2",
        "listen on 127.0.0.1 port %d proxy-from 127.0.0.1, ::1"
        % ports["lo"],
        "listen on 127.0.0.1 port %d proxy-from 127.0.0.2" % ports["other"],
    ])
    return d, up, ports


def greeted(port, header, src=None):
    c = Raw(port, src=src)
    c.send(header)
    r = c.reply()
    assert r.startswith(b"220 "), r
    return c


@pytest.mark.parametrize("kind,ip,literal", [
    ("v1", "192.0.2.7", "192.0.2.7"),
    ("v1", "2001:db8::5", "IPv6:2001:db8::5"),
    ("v2", "198.51.100.9", "198.51.100.9"),
    ("v2", "2001:db8::6", "IPv6:2001:db8::6"),
])
def test_header_address_is_the_client(proxied, kind, ip, literal):
    d, up, ports = proxied
    # A TLV the parser must skip (PP2_TYPE_NOOP) on v2.
    hdr = v1(ip) if kind == "v1" else v2(ip, tlvs=b"\x04\x00\x03abc")
    c = greeted(ports["lo"], hdr)
    data = make_message(1, tag="proxy-" + kind)
    r = send_through(c, "rcpt@example.net", data)
    assert r.startswith(b"250 "), r
    c.close()
    m = up.wait_messages(1)[0]
    rcv, rest = split_received(m["data"])
    assert rcv.group("ip").decode() == literal
    assert rest == with_x_peer(data, ip), rest[:300]
    qid = rcv.group("qid").decode()
    d.wait_log(r"event=connect session=\S+ client=%s port=40000 "
               r"proxy=127\.0\.0\.1" % re.escape(ip))
    d.wait_log(r"event=message queue_id=%s client=%s " % (qid,
                                                            re.escape(ip)))


def test_bytes_after_the_header_are_smtp(proxied):
    """The header split over three writes, and EHLO in the same packet
    as its end: the EHLO is answered (nothing past the header was
    eaten), the header is not taken before it is whole."""
    d, up, ports = proxied
    hdr = v2("192.0.2.8")
    c = Raw(ports["lo"])
    c.send(hdr[:5])
    time.sleep(0.2)     # the client's pace: the header comes in pieces
    c.send(hdr[5:20])
    time.sleep(0.2)
    c.send(hdr[20:] + b"EHLO early.example\r\n")
    assert c.reply().startswith(b"220 ")
    assert c.reply().startswith(b"250 ")
    c.send(b"QUIT\r\n")
    assert c.reply().startswith(b"221 ")
    d.wait_log(r"event=connect session=\S+ client=192\.0\.2\.8 ")


def test_rules_and_limits_use_the_header_address(proxied):
    d, up, ports = proxied
    # trusted-networks 192.0.2.0/24: that client relays anywhere, one
    # from elsewhere does not (though both really come from loopback).
    c = greeted(ports["lo"], v1("192.0.2.9"))
    r = send_through(c, "x@elsewhere.example", make_message(2))
    assert r.startswith(b"250 "), r
    c.close()
    c = greeted(ports["lo"], v1("203.0.113.4"))
    r = send_through(c, "x@elsewhere.example", make_message(3))
    assert r.startswith(b"550 5.7.1"), r
    c.close()
    # max-sessions-per-ip 2 counts the header's address (loopback, the
    # real one, would be exempt).
    held = [greeted(ports["lo"], v1("203.0.113.5")) for _ in range(2)]
    c = Raw(ports["lo"])
    c.send(v1("203.0.113.5"))
    r = c.reply()
    assert r.startswith(b"421 ") and b"too many connections" in r, r
    other = greeted(ports["lo"], v1("203.0.113.6"))
    for x in held + [c, other]:
        x.close()
    d.wait_log(r"client=203\.0\.113\.5 reason=max-sessions-per-ip")


def test_v2_local_keeps_the_real_address(proxied):
    d, up, ports = proxied
    c = greeted(ports["lo"], v2(None))
    r = send_through(c, "rcpt@example.net", make_message(4))
    assert r.startswith(b"250 "), r
    c.close()
    rcv, rest = split_received(up.wait_messages(1)[0]["data"])
    assert rcv.group("ip") == b"127.0.0.1"


def test_source_not_listed_is_closed_before_smtp(proxied):
    d, up, ports = proxied
    c = Raw(ports["other"])         # from 127.0.0.1; only .2 is listed
    c.send(v1("192.0.2.7"))
    assert c.eof_at_once()
    c.close()
    d.wait_log(r"event=proxy-refused session=[0-9a-f]{16} "
               r"client=127\.0\.0\.1 port=\d+ "
               r"reason=not-in-proxy-from")
    # The listed source is taken on the same listener.
    c = greeted(ports["other"], v1("192.0.2.7"), src="127.0.0.2")
    c.close()


@pytest.mark.parametrize("hdr,reason", [
    (b"PROXY TCP4 192.0.2.7 127.0.0.1 40000\r\n", None),
    (b"PROXY TCP4 192.0.2.777 127.0.0.1 1 2\r\n", None),
    (b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 25\n", None),
    (b"EHLO i.forgot.the.header\r\n", None),
    (V2_SIG + b"\x31\x11\x00\x0c" + b"\x00" * 12, None),    # version 3
    (V2_SIG + b"\x21\x11\x00\x08" + b"\x00" * 8, None),     # too short
    (V2_SIG + b"\x21\x11\x00\x10" + b"\x00" * 12 + b"\x04\x00\x09x",
     None),                                                 # TLV overrun
])
def test_malformed_header_is_closed_before_smtp(proxied, hdr, reason):
    d, up, ports = proxied
    before = len(d.log_grep(r"event=proxy-refused session="))
    c = Raw(ports["lo"])
    c.send(hdr)
    assert c.eof_at_once()
    c.close()
    d.wait_log(r"event=proxy-refused session=\S+ client=127\.0\.0\.1 "
               r"reason=", count=before + 1)


def test_missing_header_is_closed_after_5_seconds(proxied):
    d, up, ports = proxied
    c = Raw(ports["lo"])
    t0 = time.monotonic()
    assert c.eof_at_once()
    elapsed = time.monotonic() - t0
    c.close()
    assert 4.5 <= elapsed <= scaled(8), elapsed
    d.wait_log(r"event=proxy-refused session=\S+ client=127\.0\.0\.1 "
               r"reason=\"no complete header in time\"")


# --------------------------------------------------------------------------
# the real HAProxy

HAPROXY_CFG = """\
global
    stats socket {dir}/haproxy.sock mode 600 level admin
    maxconn 2000

defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 3
    option redispatch 1

frontend fe_v2
    bind {bind}:{p_v2}
    default_backend be_v2

frontend fe_v1
    bind {bind}:{p_v1}
    default_backend be_v1

backend be_v2
    balance roundrobin
    option smtpchk EHLO haproxy.test
    default-server inter 200ms fall 1 rise 1
{servers_v2}

backend be_v1
    balance roundrobin
    option smtpchk EHLO haproxy.test
    default-server inter 200ms fall 1 rise 1
{servers_v1}
"""


class HAProxy:
    def __init__(self, dirpath, bind, instances):
        self.dir = dirpath
        os.makedirs(dirpath, exist_ok=True)
        self.p_v2, self.p_v1 = free_port(), free_port()
        sv = lambda how: "\n".join(
            "    server s%d 127.0.0.1:%d %s check" % (i, port, how)
            for i, port in enumerate(instances))
        self.cfg = os.path.join(dirpath, "haproxy.cfg")
        with open(self.cfg, "w") as f:
            f.write(HAPROXY_CFG.format(
                dir=dirpath, bind=bind, p_v2=self.p_v2, p_v1=self.p_v1,
                servers_v2=sv("send-proxy-v2"),
                servers_v1=sv("send-proxy")))
        self.err = open(os.path.join(dirpath, "haproxy.err"), "wb")
        self.proc = subprocess.Popen(
            [need_tool("haproxy"), "-f", self.cfg, "-db"],
            stdin=subprocess.DEVNULL, stdout=self.err, stderr=self.err,
            start_new_session=True)

    def stat(self):
        """{(backend, server): status} from the stats socket."""
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(os.path.join(self.dir, "haproxy.sock"))
            s.sendall(b"show stat\n")
            out = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                out += d
        except OSError:
            return {}
        finally:
            s.close()
        res = {}
        for line in out.decode().splitlines():
            f = line.split(",")
            if len(f) > 17 and f[0].startswith("be_") and \
                    f[1].startswith("s"):
                res[(f[0], f[1])] = f[17]
        return res

    def wait_status(self, want, what):
        assert self.proc.poll() is None, self.log()
        return wait_for(lambda: (lambda st: st if st and all(
            st.get(k) == v for k, v in want.items()) else None)(
            self.stat()), scaled(15), what)

    def log(self):
        with open(self.err.name, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(scaled(10))
        self.err.close()


@pytest.fixture
def haproxy_factory():
    made = []

    def make(*a):
        h = HAProxy(*a)
        made.append(h)
        return h
    yield make
    for h in made:
        h.stop()


def ns_send(ns, port, data, rcpt, ehlo="ns.example"):
    """One message from the namespace through HAProxy; the 250 text."""
    s = ns.inside(lambda: smtplib.SMTP(ns.host_ip, port,
                                       timeout=scaled(30)))
    try:
        s.ehlo(ehlo)
        s.mail("a@example.org")
        code, text = s.rcpt(rcpt)
        assert code == 250, (code, text)
        code, text = s.data(data)
        assert code == 250, (code, text)
    finally:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            s.close()
    return text.decode()


def two_instances(relay_factory, world, up, net):
    """Two relay-mode instances, their own queues, each with a
    proxy-from listener.  [(daemon, proxy port, conf lines, queue)]."""
    out = []
    for i in range(2):
        pport = free_port()
        queue = os.path.join(world.path, "queue%d" % i)
        lines = ["relay-domains example.net",
                 "trusted-networks " + net,
                 "stop-timeout 20s",
                 "listen on 127.0.0.1 port %d proxy-from 127.0.0.1" % pport]
        d, _ = start_relay(relay_factory, world, up, lines,
                           name="smtpd%d.conf" % i, queue=queue)
        out.append((d, pport, lines, queue))
    return out


def test_haproxy_v1_and_v2(relay_factory, world, upstream_factory, netns,
                           haproxy_factory):
    need_tool("haproxy")
    up = upstream_factory()
    net = netns.host_ip.rsplit(".", 1)[0] + ".0/24"
    inst = two_instances(relay_factory, world, up, net)
    h = haproxy_factory(os.path.join(world.path, "haproxy"), netns.host_ip,
                        [i[1] for i in inst])
    # option smtpchk through the PROXY listener (a header first): up.
    h.wait_status({(b, "s%d" % i): "UP" for b in ("be_v1", "be_v2")
                   for i in range(2)}, "HAProxy's checks to pass")
    # x@elsewhere.example: only trusted-networks (the namespace's /24,
    # not loopback) lets it relay.
    for n in range(4):
        port = h.p_v2 if n % 2 == 0 else h.p_v1
        ns_send(netns, port, make_message(n, tag="ha"), "x@elsewhere.example")
    msgs = up.wait_messages(4)
    for m in msgs:
        rcv, rest = split_received(m["data"])
        assert rcv.group("ip").decode() == netns.ns_ip
        assert b"\r\nX-Peer: %s\r\n\r\n" % netns.ns_ip.encode() in rest
    # Both instances took some, each logging the namespace's address.
    for d, _, _, _ in inst:
        d.wait_log(r"event=connect session=\S+ client=%s port=\d+ "
                   r"proxy=127\.0\.0\.1" % re.escape(netns.ns_ip))
        d.wait_log(r"event=message queue_id=\S+ client=%s " %
                   re.escape(netns.ns_ip))
    # The control: loopback itself is not trusted.
    s = smtplib.SMTP("127.0.0.1", inst[0][0].port, timeout=scaled(10))
    s.ehlo("lo.example")
    s.mail("a@example.org")
    assert s.rcpt("x@elsewhere.example")[0] == 550
    s.quit()


class Sender(threading.Thread):
    """Sends its messages through HAProxy, several per session, and
    sends again whatever got no 250 (a 421, a closed connection): what
    any MTA does.  acked: the Message-IDs that got a 250."""

    def __init__(self, ns, port, todo, deadline):
        super().__init__(daemon=True)
        self.ns, self.port, self.todo = ns, port, list(todo)
        self.deadline = deadline
        self.acked, self.retries, self.error = [], 0, None

    def session(self):
        s = self.ns.inside(lambda: smtplib.SMTP(
            self.ns.host_ip, self.port, timeout=scaled(30)))
        try:
            s.ehlo("ns.example")
            for _ in range(5):
                if not self.todo:
                    break
                n, data = self.todo[0]
                s.mail("a@example.org")
                code, text = s.rcpt("x@elsewhere.example")
                assert code != 550, (code, text)    # the rule held
                if code != 250:
                    raise smtplib.SMTPResponseException(code, text)
                code, text = s.data(data)
                if code != 250:
                    raise smtplib.SMTPResponseException(code, text)
                self.acked.append(message_id(data))
                self.todo.pop(0)
            s.quit()
        finally:
            s.close()

    def run(self):
        try:
            while self.todo and time.monotonic() < self.deadline:
                try:
                    self.session()
                except (smtplib.SMTPException, OSError):
                    self.retries += 1
                    time.sleep(0.05)    # the client's back-off
        except AssertionError as e:
            self.error = e


def test_rolling_restart_loses_nothing(relay_factory, world,
                                       upstream_factory, netns,
                                       haproxy_factory):
    """SIGTERM to one of two instances during 1,000 messages through
    HAProxy (send-proxy-v2), then it starts again on its queue: every
    message that got a 250 arrives upstream, at least once (a 250 lost
    on the way would be sent again: the count of those is printed)."""
    need_tool("haproxy")
    up = upstream_factory()
    net = netns.host_ip.rsplit(".", 1)[0] + ".0/24"
    inst = two_instances(relay_factory, world, up, net)
    h = haproxy_factory(os.path.join(world.path, "haproxy"), netns.host_ip,
                        [i[1] for i in inst])
    h.wait_status({("be_v2", "s0"): "UP", ("be_v2", "s1"): "UP"},
                  "HAProxy's checks to pass")
    total, nthreads = 1000, 8
    deadline = time.monotonic() + scaled(150)
    msgs = [(n, make_message(n, tag="roll")) for n in range(total)]
    senders = [Sender(netns, h.p_v2, msgs[i::nthreads], deadline)
               for i in range(nthreads)]
    for s in senders:
        s.start()
    wait_for(lambda: sum(len(s.acked) for s in senders) >= 300, scaled(60),
             "300 messages acknowledged")
    a, pport, lines, queue = inst[0]
    a.stop(signal.SIGTERM, timeout=scaled(30))
    a.wait_log(r"event=stop result=clean")
    acked_at_stop = sum(len(s.acked) for s in senders)
    h.wait_status({("be_v2", "s0"): "DOWN"}, "HAProxy to see s0 down")
    # The rolling restart: the same instance again, on its own queue.
    a2, _ = start_relay(relay_factory, world, up, lines,
                        name="smtpd0.conf", queue=queue)
    h.wait_status({("be_v2", "s0"): "UP"}, "s0 up again")
    for s in senders:
        s.join(max(0, deadline - time.monotonic()))
        assert not s.is_alive(), "a sender did not finish in time"
        assert s.error is None, s.error
    acked = [i for s in senders for i in s.acked]
    assert len(acked) == total and len(set(acked)) == total
    assert acked_at_stop < total, "the stop came after the run"
    # Every acknowledged one, not a count: a redelivered copy would
    # make up the count while the last message is still on its way.
    wait_for(lambda: set(acked) <= {message_id(m["data"])
                                    for m in up.messages()},
             scaled(60), "every acknowledged message upstream",
             interval=0.05)
    got = up.messages()
    ids = [message_id(m["data"]) for m in got]
    missing = set(acked) - set(ids)
    assert not missing, "%d acknowledged messages lost: %s" % (
        len(missing), sorted(missing)[:10])
    dups = len(ids) - len(set(ids))
    # A copy with the same queue id is the relay's redelivery (an
    # upstream 250 not yet recorded when the relay stopped); another
    # queue id is a client's resending after a 250 it never saw.
    qids = {}
    for m in got:
        qids.setdefault(message_id(m["data"]), []).append(
            split_received(m["data"])[0].group("qid").decode())
    print("duplicates:", {k: v for k, v in qids.items() if len(v) > 1})
    print("rolling restart: %d acknowledged, %d arrived, %d duplicates, "
          "%d client retries, %d acknowledged before the SIGTERM" % (
              len(acked), len(ids), dups, sum(s.retries for s in senders),
              acked_at_stop))
    # The relay finished its deliveries in flight before it stopped: no
    # queue id went upstream twice.
    assert all(len(q) == len(set(q)) for q in qids.values()), qids
    # Drained or 421: the stopped instance said which sessions it ended.
    assert a.log_grep(r"event=stop-requested")

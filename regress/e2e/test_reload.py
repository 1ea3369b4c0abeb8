"""Reload (SPEC section 12): a SIGHUP replaces the workers, and the
sessions open on the old ones go on undisturbed, messages after
messages, with no 421 between two of them; new connections during a
storm of reloads are all greeted with 220 by the new workers.

Clients: smtplib in threads and the raw client of harness.py, on
loopback (nothing here depends on the client's address).  Between two
signals the test waits for the new workers to be in their sandbox.
"""
import signal
import smtplib
import threading

from harness import scaled, wait_for

CLIENTS = 8
RELOADS = 20


class Sender(threading.Thread):
    """One smtplib connection, kept open, sending messages in a loop
    until told to stop; every reply that is not 250 is recorded."""

    def __init__(self, port, n):
        super().__init__(daemon=True)
        self.port = port
        self.n = n
        self.stop = threading.Event()
        self.sent = 0
        self.errors = []
        self.conn = smtplib.SMTP("127.0.0.1", port, timeout=scaled(20))
        self.conn.ehlo("keep.example")

    def run(self):
        try:
            while not self.stop.is_set():
                msg = ("Subject: %d-%d\r\n\r\nkept open\r\n"
                       % (self.n, self.sent)).encode()
                code, text = self.conn.mail("a@example.com")
                if code != 250:
                    self.errors.append(("MAIL", code, text))
                    return
                code, text = self.conn.rcpt("b@example.com")
                if code != 250:
                    self.errors.append(("RCPT", code, text))
                    return
                code, text = self.conn.data(msg)
                if code != 250:
                    self.errors.append(("DATA", code, text))
                    return
                self.sent += 1
                # An idle moment between two messages, as a client has.
                self.stop.wait(0.02)
            code, text = self.conn.noop()
            if code != 250:
                self.errors.append(("NOOP", code, text))
            self.conn.quit()
        except (smtplib.SMTPException, OSError) as e:
            self.errors.append(("exception", repr(e)))


def test_reload_storm_keeps_sessions(smtpd):
    """20 SIGHUPs while 8 connections send messages in a loop: no 421,
    every message 250, and every new connection during the storm gets
    a 220 from a worker that is not draining."""
    d = smtpd
    known = set(d.wait_workers(2))
    senders = [Sender(d.port, i) for i in range(CLIENTS)]
    for s in senders:
        s.start()
    wait_for(lambda: all(s.sent > 0 for s in senders), scaled(10),
             "a first message on each connection")
    greetings = []
    for _ in range(RELOADS):
        before = sum(s.sent for s in senders)
        d.send_signal(signal.SIGHUP)
        new = d.wait_workers(2, timeout=scaled(10), exclude=known)
        known |= set(new)
        # A new connection is greeted (by a new worker: the old ones
        # no longer accept), and can say EHLO.
        c = d.client(greet=False)
        r = c.reply()
        greetings.append(r.code)
        c.send(b"EHLO new.example\r\n")
        greetings.append(c.reply().code)
        c.send(b"QUIT\r\n")
        c.reply()
        c.close()
        # The kept connections went on sending through the reload.
        wait_for(lambda: sum(s.sent for s in senders) >= before + CLIENTS
                 or any(s.errors for s in senders), scaled(10),
                 "messages after the reload")
        assert not [s.errors for s in senders if s.errors]
    for s in senders:
        s.stop.set()
    for s in senders:
        s.join(scaled(20))
    errors = [e for s in senders for e in s.errors]
    assert errors == [], errors
    assert set(greetings) == {220, 250}, greetings
    assert not d.log_grep(r"Service shutting down|event=kill")
    total = sum(s.sent for s in senders)
    assert len(d.wait_blocks(total, timeout=scaled(20))) >= total
    # The retired workers went with their last session.
    wait_for(lambda: set(d.sessions()) <= known and
             len(d.sessions()) == 2, scaled(10), "the old workers to exit")


def test_retired_worker_keeps_an_idle_session(smtpd):
    """A session idle across a reload is not closed: it sends a
    message after it, and its worker exits once it quits."""
    d = smtpd
    old = d.wait_workers(2)
    c = d.client()
    c.send(b"EHLO idle.example\r\n")
    assert c.reply().code == 250
    worker = d.worker_of(c)
    d.send_signal(signal.SIGHUP)
    d.wait_workers(2, exclude=old)
    assert worker in d.sessions()
    c.send(b"MAIL FROM:<a@example.com>\r\n")
    assert c.reply().code == 250
    c.send(b"RCPT TO:<b@example.com>\r\n")
    assert c.reply().code == 250
    c.send(b"DATA\r\n")
    assert c.reply().code == 354
    c.send(b"Subject: after\r\n\r\nafter the reload\r\n.\r\n")
    assert c.reply().code == 250
    c.send(b"NOOP\r\n")
    assert c.reply().code == 250
    c.send(b"QUIT\r\n")
    assert c.reply().code == 221
    wait_for(lambda: worker not in d.sessions(), scaled(10),
             "the retired worker to exit")
    assert not d.log_grep(r"Service shutting down")


def test_stop_reaches_retired_workers(smtpd):
    """SIGTERM after a reload stops the retired workers too: the idle
    session they kept gets 421 4.3.2 and the daemon exits 0."""
    d = smtpd
    old = d.wait_workers(2)
    c = d.client()
    c.send(b"EHLO idle.example\r\n")
    assert c.reply().code == 250
    worker = d.worker_of(c)
    d.send_signal(signal.SIGHUP)
    d.wait_workers(2, exclude=old)
    assert worker in d.sessions()
    assert d.stop(timeout=scaled(15)) == 0
    r = c.reply()
    assert r.code == 421 and r.enh == "4.3.2", r.raw

#!/usr/bin/env python3
"""A small recording SMTP server, the upstream of relay-mode tests.

Each accepted message is written to DIR as NNNNNN.json with the peer,
HELO, whether EHLO was used, MAIL FROM (the whole argument; "sender" is
the address alone, "" for <>), the RCPT TO list and the data exactly as
received (after dot-unstuffing), base64-encoded, so a test can compare
byte for byte.  A server started again on the same DIR numbers on from
the last file there.

Replies can be forced with --rcpt-code ADDR=CODE (repeatable),
--mail-code CODE, --data-code CODE; --no-ehlo answers EHLO with 502 so
the client must fall back to HELO; --take-bounces spares mail from <>
the forced MAIL and DATA replies; --no-8bitmime and --no-smtputf8 leave
those extensions out of the EHLO reply.  --no-pipelining leaves out
PIPELINING and reads the commands unbuffered: a command that arrived
before the reply to the one before it (the client pipelined anyway) is
counted, per message, in its record's "early" (--offer-pipelining
advertises it all the same: the detector's control).  Misbehaving
upstreams: --no-greeting accepts connections and never says a word;
--hang-first K makes the first K connections stop answering at the
final dot of their first message (the message is not recorded, the
socket stays open), while later connections are served as usual;
--data-delay MS records a message and waits MS milliseconds before
its 250 (a delivery in flight for that long).
--close-at-mail K closes each connection, without a reply, at its K-th
MAIL (an upstream gone while the client thought it idle).  Each record
also has "conn" (the connection's number, from 1) and "rsets" (the RSETs
on that connection since its message before).  The
listening port is printed on standard output as "port N" once the
server accepts connections.
"""
import argparse
import base64
import json
import os
import select
import socket
import socketserver
import sys
import threading
import time

lock = threading.Lock()
counter = [0]
conns = [0]


def path_arg(arg):
    """The address of "<path> [params]": what is inside the brackets (a
    quoted local part may hold blanks), or the first word."""
    if arg.startswith("<"):
        end = arg.rfind(">")
        if end != -1:
            return arg[1:end]
    return arg.split(" ")[0]


class Handler(socketserver.StreamRequestHandler):
    timeout = 60

    def setup(self):
        super().setup()
        self.early = 0
        if self.server.opts.no_pipelining:
            # Unbuffered: what the client sent ahead stays in the socket.
            self.rfile = self.connection.makefile("rb", 0)

    def reply(self, text):
        if self.server.opts.no_pipelining:
            r, _, _ = select.select([self.connection], [], [], 0.02)
            if r:
                self.early += 1
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def readline(self):
        line = self.rfile.readline(4096)
        if not line:
            raise EOFError
        if not line.endswith(b"\r\n"):
            raise EOFError("line without CRLF")
        return line[:-2]

    def hang(self):
        """Stop answering, keep the socket open until the peer closes;
        DIR/.hung-N says that connection N is here."""
        open(os.path.join(self.server.opts.dir, ".hung-%d" % conns[0]),
             "w").close()
        while True:
            try:
                if not self.connection.recv(4096):
                    return
            except socket.timeout:
                continue
            except OSError:
                return

    def handle(self):
        opts = self.server.opts
        with lock:
            conns[0] += 1
            conn_no = conns[0]
        if opts.no_greeting:
            self.hang()
            return
        # Replies to pipelined commands go out at once, not after the
        # peer's delayed ACK (Nagle).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        helo, mail, sender, rcpts = None, None, None, []
        esmtp = False
        nmail = rsets = 0
        self.reply("220 upstream.test ESMTP test")
        try:
            while True:
                line = self.readline()
                verb = line[:4].upper()
                if verb == b"EHLO":
                    if opts.no_ehlo:
                        self.reply("502 5.5.1 EHLO not supported")
                        continue
                    helo = line[5:].decode("latin-1")
                    esmtp = True
                    caps = ["250-upstream.test", "250-SIZE 100000000"]
                    if not opts.no_8bitmime:
                        caps.append("250-8BITMIME")
                    if not opts.no_smtputf8:
                        caps.append("250-SMTPUTF8")
                    if not opts.no_pipelining or opts.offer_pipelining:
                        caps.append("250-PIPELINING")
                    caps.append("250 ENHANCEDSTATUSCODES")
                    self.reply("\r\n".join(caps))
                elif verb == b"HELO":
                    helo = line[5:].decode("latin-1")
                    esmtp = False
                    self.reply("250 upstream.test")
                elif verb == b"MAIL":
                    nmail += 1
                    if nmail == opts.close_at_mail:
                        return
                    mail = line[10:].decode("latin-1")
                    sender = path_arg(mail)
                    if opts.mail_code and not (opts.take_bounces and
                                               sender == ""):
                        self.reply("%d mail refused" % opts.mail_code)
                        mail = sender = None
                        rcpts = []
                        continue
                    rcpts = []
                    self.reply("250 2.1.0 ok")
                elif verb == b"RCPT":
                    if mail is None:
                        self.reply("503 5.5.1 MAIL first")
                        continue
                    addr = path_arg(line[8:].decode("latin-1"))
                    code = self.server.rcpt_codes.get(addr)
                    if code:
                        self.reply("%d 5.1.1 <%s> refused by test" %
                                   (code, addr) if code >= 500 else
                                   "%d 4.2.0 <%s> try later" % (code, addr))
                        continue
                    rcpts.append(addr)
                    self.reply("250 2.1.5 ok")
                elif verb == b"DATA":
                    if not rcpts:
                        self.reply("554 5.5.1 no valid recipients")
                        continue
                    self.reply("354 go ahead")
                    data = bytearray()
                    while True:
                        l = self.readline()
                        if l == b".":
                            break
                        if l.startswith(b"."):
                            l = l[1:]
                        data += l + b"\r\n"
                    if conn_no <= opts.hang_first:
                        self.hang()
                        return
                    if opts.data_code and not (opts.take_bounces and
                                               sender == ""):
                        self.reply("%d data refused" % opts.data_code)
                        continue
                    with lock:
                        counter[0] += 1
                        n = counter[0]
                    rec = {"peer": self.client_address[0], "helo": helo,
                           "mail_from": mail, "sender": sender,
                           "esmtp": esmtp, "rcpts": rcpts,
                           "early": self.early, "conn": conn_no,
                           "rsets": rsets,
                           "data": base64.b64encode(bytes(data)).decode()}
                    tmp = os.path.join(opts.dir, ".%06d.tmp" % n)
                    with open(tmp, "w") as f:
                        json.dump(rec, f)
                    os.rename(tmp, os.path.join(opts.dir, "%06d.json" % n))
                    self.early = 0
                    rsets = 0
                    if opts.data_delay:
                        time.sleep(opts.data_delay / 1000.0)
                    self.reply("250 2.0.0 ok stored %d" % n)
                elif verb == b"RSET":
                    rsets += 1
                    mail, rcpts = None, []
                    self.reply("250 2.0.0 ok")
                elif verb == b"NOOP":
                    self.reply("250 2.0.0 ok")
                elif verb == b"QUIT":
                    self.reply("221 2.0.0 bye")
                    return
                else:
                    self.reply("500 5.5.2 unknown command")
        except (EOFError, ConnectionError, OSError):
            return


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--rcpt-code", action="append", default=[])
    ap.add_argument("--mail-code", type=int, default=0)
    ap.add_argument("--data-code", type=int, default=0)
    ap.add_argument("--no-ehlo", action="store_true")
    ap.add_argument("--no-pipelining", action="store_true")
    # The control of --no-pipelining: the detector, and PIPELINING.
    ap.add_argument("--offer-pipelining", action="store_true")
    ap.add_argument("--no-8bitmime", action="store_true")
    # --mail-code and --data-code spare mail from <>: bounces arrive.
    ap.add_argument("--take-bounces", action="store_true")
    ap.add_argument("--no-smtputf8", action="store_true")
    ap.add_argument("--no-greeting", action="store_true")
    ap.add_argument("--hang-first", type=int, default=0)
    ap.add_argument("--data-delay", type=int, default=0)
    ap.add_argument("--close-at-mail", type=int, default=0)
    opts = ap.parse_args()
    os.makedirs(opts.dir, exist_ok=True)
    for name in os.listdir(opts.dir):
        if name.endswith(".json") and name[:-5].isdigit():
            counter[0] = max(counter[0], int(name[:-5]))
    srv = Server((opts.host, opts.port), Handler)
    srv.opts = opts
    srv.rcpt_codes = {}
    for spec in opts.rcpt_code:
        addr, code = spec.rsplit("=", 1)
        srv.rcpt_codes[addr] = int(code)
    print("port %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())

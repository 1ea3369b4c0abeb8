#!/usr/bin/env python3
"""A small recording SMTP server with TLS and AUTH: the upstream of the
relay's TLS tests (regress/e2e/test_upstream_tls.py).

It offers STARTTLS (RFC 3207) with --cert/--key, or speaks TLS from the
first byte with --implicit (RFC 8314); with --user/--password it offers
AUTH (RFC 4954) with the mechanisms of --mechs (PLAIN, LOGIN), only
under TLS unless --auth-plaintext, and refuses MAIL until the client
authenticated.  --no-starttls leaves STARTTLS out of the EHLO reply;
--inject sends a line right after the 220 to STARTTLS, as an attacker
in the middle would, which the client must drop.

Each accepted message is written to DIR as NNNNNN.json as
regress/lib/upstream.py does (peer, helo, esmtp, mail_from, sender,
rcpts, data in base64), plus whether it came under TLS ("tls", the
protocol in "tls_version") and who authenticated ("auth_user",
"auth_mech").  Each connection, whatever became of it, appends one JSON
line to DIR/sessions.jsonl when it ends: the SNI name, TLS, AUTH
attempts and their results, the verbs in order (with "+tls" when they
came under TLS), and the error that ended it.  Passwords are never
written anywhere.  The listening port is printed on standard output as
"port N" once the server accepts connections.
"""
import argparse
import base64
import binascii
import json
import os
import socketserver
import ssl
import sys
import threading

lock = threading.Lock()
counter = [0]

LINE_MAX = 4096


class Closed(Exception):
    pass


class Handler(socketserver.BaseRequestHandler):

    def setup(self):
        self.opts = self.server.opts
        self.sock = self.request
        self.sock.settimeout(self.opts.timeout)
        self.rbuf = b""
        self.tls = False
        self.tls_version = None
        self.sni = None
        self.auth_user = None
        self.auth_mech = None
        self.rec = {"peer": self.client_address[0], "tls": False,
                    "sni": None, "auth": [], "verbs": [], "error": None,
                    "pipelined_after_starttls": False}

    # -- I/O
    def send(self, text):
        self.sock.sendall(text.encode() + b"\r\n")

    def readline(self):
        while b"\r\n" not in self.rbuf:
            if len(self.rbuf) > LINE_MAX:
                raise Closed("line too long")
            data = self.sock.recv(4096)
            if not data:
                raise Closed("connection closed")
            self.rbuf += data
        line, self.rbuf = self.rbuf.split(b"\r\n", 1)
        return line

    def start_tls(self):
        try:
            self.sock = self.server.ssl_ctx.wrap_socket(self.sock,
                                                        server_side=True)
        except (ssl.SSLError, OSError) as e:
            raise Closed("handshake: %s" % e)
        self.tls = True
        self.tls_version = self.sock.version()
        self.sni = getattr(self.sock, "sni_name", None)
        self.rec.update(tls=True, tls_version=self.tls_version,
                        sni=self.sni)

    # -- AUTH
    def b64_line(self):
        line = self.readline()
        if line == b"*":
            return None
        try:
            return base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            return b"\0bad-base64"

    def auth(self, args):
        words = args.split(b" ")
        mech = words[0].upper().decode("latin-1")
        initial = words[1] if len(words) > 1 else None
        attempt = {"mech": mech, "tls": self.tls, "ok": False}
        self.rec["auth"].append(attempt)
        if self.auth_user is not None:
            self.send("503 5.5.1 already authenticated")
            return
        if mech not in self.server.mechs:
            self.send("504 5.5.4 mechanism not supported")
            return
        if mech == "PLAIN":
            if initial is None:
                self.send("334 ")
                resp = self.b64_line()
            elif initial == b"=":
                resp = b""
            else:
                try:
                    resp = base64.b64decode(initial, validate=True)
                except (binascii.Error, ValueError):
                    resp = b"\0bad-base64"
            if resp is None:
                self.send("501 5.0.0 cancelled")
                return
            parts = resp.split(b"\0")
            if len(parts) != 3:
                self.send("501 5.5.2 malformed PLAIN response")
                return
            user, password = parts[1], parts[2]
        else:
            if initial is not None:
                try:
                    user = base64.b64decode(initial, validate=True)
                except (binascii.Error, ValueError):
                    user = b""
            else:
                self.send("334 VXNlcm5hbWU6")
                user = self.b64_line()
            if user is None:
                self.send("501 5.0.0 cancelled")
                return
            self.send("334 UGFzc3dvcmQ6")
            password = self.b64_line()
            if password is None:
                self.send("501 5.0.0 cancelled")
                return
        attempt["user"] = user.decode("utf-8", "replace")
        if (user == self.opts.user.encode() and
                password == self.opts.password.encode()):
            attempt["ok"] = True
            self.auth_user = attempt["user"]
            self.auth_mech = mech
            self.send("235 2.7.0 Authentication successful")
        else:
            self.send("535 5.7.8 Authentication credentials invalid")

    # -- the session
    def ehlo_reply(self):
        caps = ["250-upstream.test", "250-8BITMIME", "250-SIZE 100000000",
                "250-PIPELINING"]
        if not self.tls and self.server.ssl_ctx and \
                not self.opts.implicit and not self.opts.no_starttls:
            caps.append("250-STARTTLS")
        if self.opts.user and self.auth_user is None and \
                (self.tls or self.opts.auth_plaintext):
            caps.append("250-AUTH " + " ".join(self.server.mechs))
        caps.append("250 ENHANCEDSTATUSCODES")
        self.send("\r\n".join(caps))

    def session(self):
        opts = self.opts
        helo, mail, sender, rcpts = None, None, None, []
        esmtp = False
        if opts.implicit:
            self.start_tls()
        self.send("220 upstream.test ESMTP tls test")
        while True:
            line = self.readline()
            verb = line[:4].upper()
            self.rec["verbs"].append(verb.decode("latin-1") +
                                     ("+tls" if self.tls else ""))
            if verb == b"EHLO":
                helo = line[5:].decode("latin-1")
                esmtp = True
                self.ehlo_reply()
            elif verb == b"HELO":
                helo = line[5:].decode("latin-1")
                esmtp = False
                self.send("250 upstream.test")
            elif verb == b"STAR" and line.upper() == b"STARTTLS":
                if self.tls or not self.server.ssl_ctx or \
                        opts.no_starttls:
                    self.send("502 5.5.1 no STARTTLS here")
                    continue
                self.send("220 2.0.0 ready to start TLS" +
                          ("\r\n250 injected in clear text"
                           if opts.inject else ""))
                if self.rbuf:
                    # The client sent more before the handshake.
                    self.rec["pipelined_after_starttls"] = True
                    raise Closed("data pipelined after STARTTLS")
                self.start_tls()
                helo, esmtp = None, False
            elif verb == b"AUTH" and line[4:5] == b" ":
                if not opts.user or not (self.tls or opts.auth_plaintext):
                    self.send("502 5.5.1 no AUTH here")
                    continue
                self.auth(line[5:])
            elif verb == b"MAIL":
                if opts.user and self.auth_user is None:
                    self.send("530 5.7.0 Authentication required")
                    continue
                mail = line[10:].decode("latin-1")
                sender = mail.split(" ")[0]
                if sender.startswith("<") and sender.endswith(">"):
                    sender = sender[1:-1]
                rcpts = []
                self.send("250 2.1.0 ok")
            elif verb == b"RCPT":
                if mail is None:
                    self.send("503 5.5.1 MAIL first")
                    continue
                addr = line[8:].decode("latin-1").split(" ")[0].strip("<>")
                rcpts.append(addr)
                self.send("250 2.1.5 ok")
            elif verb == b"DATA":
                if not rcpts:
                    self.send("554 5.5.1 no valid recipients")
                    continue
                self.send("354 go ahead")
                data = bytearray()
                while True:
                    l = self.readline()
                    if l == b".":
                        break
                    if l.startswith(b"."):
                        l = l[1:]
                    data += l + b"\r\n"
                self.store({"peer": self.client_address[0], "helo": helo,
                            "mail_from": mail, "sender": sender,
                            "esmtp": esmtp, "rcpts": rcpts,
                            "tls": self.tls,
                            "tls_version": self.tls_version,
                            "auth_user": self.auth_user,
                            "auth_mech": self.auth_mech,
                            "data": base64.b64encode(bytes(data)).decode()})
                mail, rcpts = None, []
            elif verb == b"RSET":
                mail, rcpts = None, []
                self.send("250 2.0.0 ok")
            elif verb == b"NOOP":
                self.send("250 2.0.0 ok")
            elif verb == b"QUIT":
                self.send("221 2.0.0 bye")
                return
            else:
                self.send("500 5.5.2 unknown command")

    def store(self, rec):
        with lock:
            counter[0] += 1
            n = counter[0]
        tmp = os.path.join(self.opts.dir, ".%06d.tmp" % n)
        with open(tmp, "w") as f:
            json.dump(rec, f)
        os.rename(tmp, os.path.join(self.opts.dir, "%06d.json" % n))
        self.send("250 2.0.0 ok stored %d" % n)

    def handle(self):
        try:
            self.session()
        except Closed as e:
            self.rec["error"] = str(e)
        except (ssl.SSLError, OSError) as e:
            self.rec["error"] = "%s: %s" % (type(e).__name__, e)
        finally:
            try:
                self.sock.close()
            except OSError:
                pass
            with lock:
                with open(os.path.join(self.opts.dir, "sessions.jsonl"),
                          "a") as f:
                    f.write(json.dumps(self.rec) + "\n")


def sni_note(sslsock, name, ctx):
    """Keep the name the client asked for (SNI) on its socket."""
    sslsock.sni_name = name


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--implicit", action="store_true")
    ap.add_argument("--no-starttls", action="store_true")
    ap.add_argument("--inject", action="store_true")
    ap.add_argument("--user", default="")
    ap.add_argument("--password", default="")
    ap.add_argument("--mechs", default="PLAIN LOGIN")
    ap.add_argument("--auth-plaintext", action="store_true")
    ap.add_argument("--timeout", type=float, default=60)
    opts = ap.parse_args()
    if opts.implicit and not opts.cert:
        ap.error("--implicit needs --cert and --key")
    os.makedirs(opts.dir, exist_ok=True)
    for name in os.listdir(opts.dir):
        if name.endswith(".json") and name[:-5].isdigit():
            counter[0] = max(counter[0], int(name[:-5]))
    srv = Server((opts.host, opts.port), Handler)
    srv.opts = opts
    srv.mechs = [m.upper() for m in opts.mechs.split()]
    srv.ssl_ctx = None
    if opts.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(opts.cert, opts.key)
        ctx.sni_callback = sni_note
        srv.ssl_ctx = ctx
    print("port %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())

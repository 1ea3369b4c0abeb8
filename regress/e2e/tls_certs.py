"""Test certificates and AUTH users for the end-to-end tests of the
daemon's server side of TLS and AUTH, made with openssl(1) in a
directory of the caller's: a test CA, a server certificate for localhost
and 127.0.0.1 signed by it, and a users file ("name crypt-hash", mode
0600) with SHA-512 crypt hashes from `openssl passwd -6`.

Only the standard library and the openssl command.
"""
import os
import ssl
import subprocess

from harness import scaled


def openssl(*args, cwd, input=None):
    """Run openssl(1); its standard output (bytes).  Asserts success."""
    p = subprocess.run(["openssl"] + list(args), cwd=cwd, input=input,
                       stdin=None if input is not None
                       else subprocess.DEVNULL,
                       capture_output=True, timeout=scaled(60))
    assert p.returncode == 0, "openssl %s: %s" % (" ".join(args),
                                                  p.stderr.decode())
    return p.stdout


class ServerCerts:
    """In directory d: ca.pem (a test CA, its key ca.key), server.pem
    and server.key (CN localhost, SAN DNS:localhost and IP:127.0.0.1,
    signed by the CA).  Paths are absolute."""

    def __init__(self, d):
        self.dir = os.path.abspath(d)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes"]
        openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem",
                "-days", "2", "-subj", "/CN=smtpd server test CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                cwd=self.dir)
        with open(os.path.join(self.dir, "server.ext"), "w") as f:
            f.write("basicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=serverAuth\n"
                    "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        openssl("req", "-new", *ec, "-keyout", "server.key", "-out",
                "server.csr", "-subj", "/CN=localhost", cwd=self.dir)
        openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem",
                "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
                "-extfile", "server.ext", "-out", "server.pem", cwd=self.dir)
        os.chmod(os.path.join(self.dir, "server.key"), 0o600)
        os.chmod(os.path.join(self.dir, "ca.key"), 0o600)
        self.ca = os.path.join(self.dir, "ca.pem")
        self.cert = os.path.join(self.dir, "server.pem")
        self.key = os.path.join(self.dir, "server.key")

    def client_context(self):
        """A client context that trusts only the test CA and checks the
        name (TLS 1.2 at least, Python's default)."""
        return ssl.create_default_context(cafile=self.ca)

    def conf_line(self):
        return "tls certificate %s key %s" % (self.cert, self.key)


def crypt_hash(password, cwd):
    """A SHA-512 crypt(3) hash of password ($6$...)."""
    out = openssl("passwd", "-6", "-stdin", cwd=cwd,
                  input=password.encode() + b"\n").decode().strip()
    assert out.startswith("$6$"), out
    return out


def users_file(path, users, mode=0o600):
    """Write a users file ("name hash" a line) for {name: password};
    its absolute path."""
    d = os.path.dirname(os.path.abspath(path))
    lines = ["# smtpd AUTH users (test)"]
    for name, password in users.items():
        lines.append("%s %s" % (name, crypt_hash(password, d)))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(path, mode)
    return os.path.abspath(path)

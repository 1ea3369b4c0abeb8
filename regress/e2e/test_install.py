"""make install and make uninstall (SPEC section 12, Service): what
install puts under DESTDIR, that it never replaces a configuration, and
that uninstall removes exactly what install put there but the
configuration."""
import os
import subprocess

from harness import ROOT, SMTPD_BIN, need_tool, scaled

EXPECTED = {
    "etc/smtpd/smtpd.conf",
    "usr/local/sbin/smtpd",
    "usr/local/sbin/smtpctl",
    "usr/local/share/man/man8/smtpd.8",
    "usr/local/share/man/man8/smtpctl.8",
    "usr/local/share/man/man5/smtpd.conf.5",
    "usr/local/lib/systemd/system/smtpd.service",
    "usr/local/lib/sysusers.d/smtpd.conf",
    "usr/local/lib/tmpfiles.d/smtpd.conf",
}


def make(destdir, *targets):
    # The build that is under test, wherever it is (build, build/asan).
    build = os.path.relpath(os.path.dirname(SMTPD_BIN), ROOT)
    p = subprocess.run(["make", "-C", ROOT, "BUILD=" + build,
                        "DESTDIR=" + destdir] + list(targets),
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=scaled(120))
    assert p.returncode == 0, (p.stdout + p.stderr).decode()
    return p.stdout.decode()


def files(top):
    out = set()
    for d, _, names in os.walk(top):
        for n in names:
            out.add(os.path.relpath(os.path.join(d, n), top))
    return out


def test_install_then_uninstall(tmp_path):
    dest = str(tmp_path / "root")
    make(dest, "install")
    assert files(dest) == EXPECTED
    unit = open(os.path.join(
        dest, "usr/local/lib/systemd/system/smtpd.service")).read()
    assert "ExecStart=/usr/local/sbin/smtpd\n" in unit
    assert "Type=notify\n" in unit
    mode = os.stat(os.path.join(dest, "usr/local/sbin/smtpd")).st_mode
    assert mode & 0o777 == 0o755
    make(dest, "uninstall")
    assert files(dest) == {"etc/smtpd/smtpd.conf"}


def test_install_keeps_a_configuration(tmp_path):
    dest = str(tmp_path / "root")
    os.makedirs(os.path.join(dest, "etc/smtpd"))
    conf = os.path.join(dest, "etc/smtpd/smtpd.conf")
    with open(conf, "w") as f:
        f.write("# the operator's own\nmode debug\n")
    out = make(dest, "install")
    assert "keeping" in out
    assert open(conf).read() == "# the operator's own\nmode debug\n"
    make(dest, "uninstall")
    assert open(conf).read() == "# the operator's own\nmode debug\n"


def test_install_sendmail(tmp_path):
    """make install leaves an existing sendmail alone; make
    install-sendmail links sendmail and mailq to smtpctl; uninstall
    removes those links with the rest."""
    dest = str(tmp_path / "root")
    other = os.path.join(dest, "usr/sbin/sendmail")
    os.makedirs(os.path.dirname(other))
    with open(other, "w") as f:
        f.write("#!/bin/sh\n# another MTA's\n")
    make(dest, "install")
    assert open(other).read() == "#!/bin/sh\n# another MTA's\n"
    make(dest, "install-sendmail")
    for link in ("usr/sbin/sendmail", "usr/bin/mailq"):
        assert os.readlink(os.path.join(dest, link)) == \
            "/usr/local/sbin/smtpctl"
    make(dest, "uninstall")
    assert files(dest) == {"etc/smtpd/smtpd.conf"}


def test_unit_passes_systemd_analyze(tmp_path):
    """The unit as installed passes systemd-analyze verify."""
    need_tool("systemd-analyze", "systemd")
    dest = str(tmp_path / "root")
    make(dest, "install")
    unit = os.path.join(dest, "usr/local/lib/systemd/system/smtpd.service")
    # verify needs the binary where ExecStart says: point it at DESTDIR.
    text = open(unit).read().replace("/usr/local/sbin/smtpd",
                                     os.path.join(dest,
                                                  "usr/local/sbin/smtpd"))
    with open(unit, "w") as f:
        f.write(text)
    p = subprocess.run(["systemd-analyze", "verify", "--man=no", unit],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=scaled(60))
    assert p.returncode == 0, (p.stdout + p.stderr).decode()

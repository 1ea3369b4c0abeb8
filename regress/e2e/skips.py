"""Every condition under which a test of regress/e2e and regress/sandbox
may skip, each with its reason, in one place (issue 15).

Two kinds:

- a cause that .ci/run (make check: test-deps, user) removes, that is a
  missing tool or a missing user: missing() skips outside CI and FAILS
  under CI=true, where it would hide a fault;
- a cause that cannot apply on the machine at all (not root, no ::1, an
  architecture whose system call numbers the tests do not know, an
  OpenSSL without TLS 1.1): a skip, with the reason, also under CI.

A set-up step that should work (creating a network namespace as root,
gdb attaching to a child as root) is never a skip: it is a failure,
reported by the fixture or helper that does it.  Nothing else in the
tests calls pytest.skip or pytest.mark.skipif; grep for them to check.
"""
import os
import platform
import pwd
import shutil
import socket

import pytest

# What CI sets (.ci/run exports CI=true).
IN_CI = os.environ.get("CI", "") not in ("", "0", "false")
IS_ROOT = os.geteuid() == 0

# -- the reasons, each once ------------------------------------------------

WHY_NOT_ROOT = ("needs root (privilege separation, network namespaces, "
                "tmpfs mounts, gdb on a sandboxed child; make check runs "
                "as root in CI)")
WHY_NO_IPV6 = "this machine has no ::1 (IPv6 loopback disabled)"
WHY_ARCH = ("no system call numbers known for %s (the tables cover "
            "x86_64 and aarch64)")
WHY_NO_TLS11 = ("the local OpenSSL cannot do TLS 1.1 at all, so no client "
                "can offer it")
WHY_NOFILE = ("RLIMIT_NOFILE hard limit %d < %d and, not being root, the "
              "test cannot raise it")


def missing(why):
    """Skip the calling test for something .ci/run installs or creates
    (a tool, a user), or fail it under CI, where it must be there."""
    if IN_CI:
        pytest.fail("CI=true and %s (.ci/run installs it)" % why)
    pytest.skip(why)


def need_tool(name, package=None):
    """The path of the program name, or missing()."""
    path = shutil.which(name)
    if path is None:
        missing("no %s (Debian package %s)" % (name, package or name))
    return path


def need_user(name):
    """The passwd entry of name, or missing() (make user creates it)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        missing("user %s does not exist (make user creates it)" % name)


def need_root():
    """Skip unless root: as any other user the test cannot apply."""
    if not IS_ROOT:
        pytest.skip(WHY_NOT_ROOT)


# The same as a decorator.
root_only = pytest.mark.skipif(not IS_ROOT, reason=WHY_NOT_ROOT)


def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


ipv6_only = pytest.mark.skipif(not have_ipv6_loopback(), reason=WHY_NO_IPV6)


def need_arch(table):
    """table[arch] for this machine's architecture, or a skip."""
    arch = platform.machine()
    if arch not in table:
        pytest.skip(WHY_ARCH % arch)
    return table[arch]


def need_tls11(works):
    """Skip unless works (a local TLS 1.1 handshake succeeded)."""
    if not works:
        pytest.skip(WHY_NO_TLS11)


def need_nofile(hard, n):
    """Called when RLIMIT_NOFILE's hard limit could not be raised to n."""
    if IS_ROOT:
        pytest.fail("root could not raise RLIMIT_NOFILE to %d" % n)
    pytest.skip(WHY_NOFILE % (hard, n))

"""Fixtures of the end-to-end tests.

smtpd_factory(*extra, args=("-d", "-n"), workers=2, ...) starts
build/smtpd (SMTPD_BIN) on a free loopback port picked at run time,
waits (polling, with a deadline) for its 220 banner, captures its
standard output and error to files, and on teardown sends SIGTERM,
waits with a deadline, SIGKILLs the whole process group if anything is
left, and asserts that no process of the run is left, that the exit
status was 0, and that no child died unexpectedly.

smtpd is one such daemon; @pytest.mark.smtpd_args("-s", "10000") adds
arguments to it.  The machinery (the daemon, the raw SMTP client,
wait_for) is in harness.py.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
# The helpers the tests use, here for whoever looks for them first.
from harness import Client, Daemon, free_port, wait_for  # noqa: E402,F401


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "smtpd_args(*args): extra daemon arguments for the "
        "smtpd fixture")


@pytest.fixture
def smtpd_factory(tmp_path):
    yield from harness.daemon_factory(str(tmp_path))


@pytest.fixture
def smtpd(request, smtpd_factory):
    marker = request.node.get_closest_marker("smtpd_args")
    extra = marker.args if marker else ()
    return smtpd_factory(*extra)

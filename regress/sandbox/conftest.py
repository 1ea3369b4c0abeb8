"""The sandbox tests use the end-to-end harness (regress/e2e/harness.py)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e"))

import harness  # noqa: E402


@pytest.fixture
def smtpd_factory(tmp_path):
    yield from harness.daemon_factory(str(tmp_path))

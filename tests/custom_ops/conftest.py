"""Fixtures for the custom-op tests: the built library (skip locally, fail on CI when missing)."""

from __future__ import annotations

import os

import pytest

from trexport.runtime import ops


@pytest.fixture(scope="session")
def ops_library():
    """Path of libtrexport_ops.so. Missing: skip with a reason, or fail when $CI is set (CI builds it)."""
    if not ops.is_available():
        message = f"trexport custom-op library not built (run `{ops.BUILD_COMMAND}`)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must build it before the tests")
        pytest.skip(message)
    return ops.library_path()

"""Fixtures of the network lab (see netlab.py). Needs root, iproute2, nftables, irtt, iperf3.

Without them the lab tests skip with the reason, except in CI (``CI=true``, ``1`` or ``yes``,
as in tests/conftest.py), where they fail:
CI runs as root with the tools installed, so a lab that cannot start there is a broken
build, not a reason to report green.
"""

from __future__ import annotations

import os

import pytest

from .netlab import Lab, missing_requirements, remove_stale_namespaces
from .product import product_cli_problem


def unavailable(reason: str) -> None:
    """Fail in CI, skip elsewhere."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"lab cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def require_lab() -> None:
    problems = missing_requirements()
    if problems:
        unavailable("; ".join(problems))


@pytest.fixture(scope="session")
def _stale_namespaces_removed() -> None:
    if not missing_requirements():
        remove_stale_namespaces()


@pytest.fixture
def lab(_stale_namespaces_removed) -> Lab:
    """A fresh client -- router -- monitor lab, always torn down, also when the test fails."""
    require_lab()
    built = Lab.create()
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def product_cli() -> str:
    """Path of the ``sessionready`` command under test."""
    require_lab()
    path, problem = product_cli_problem()
    if problem:
        unavailable(problem)
    return path

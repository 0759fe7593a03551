"""Fixtures of the network lab (see netlab.py). Needs root, iproute2, nftables, irtt, iperf3.

Without them the lab tests skip with the reason, except in CI (``CI=true``, ``1`` or ``yes``,
as in tests/conftest.py), where they fail:
CI runs as root with the tools installed, so a lab that cannot start there is a broken
build, not a reason to report green.
"""

from __future__ import annotations

import pytest

from tests.conftest import unavailable

from .netlab import Lab, LabError, missing_requirements, remove_stale_namespaces
from .product import product_cli_problem


def require_lab() -> None:
    problems = missing_requirements()
    if problems:
        unavailable("the network lab cannot run: " + "; ".join(problems))


@pytest.fixture(scope="session")
def _stale_namespaces_removed() -> None:
    if not missing_requirements():
        remove_stale_namespaces()


@pytest.fixture
def lab(request, _stale_namespaces_removed) -> Lab:
    """A fresh client -- router -- monitor lab, always torn down, also when the test fails.

    Parametrized indirectly with a congestion control ("cubic", "bbr"), the client namespace
    runs it (``Lab.create(congestion=...)``); a host that cannot give it fails in CI.
    """
    require_lab()
    congestion = getattr(request, "param", None)
    try:
        built = Lab.create(congestion=congestion)
    except LabError as exc:
        if congestion is None:
            raise
        unavailable(f"the lab cannot run its client on {congestion}: {exc}")
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

"""Schemathesis drives the monitor from its own OpenAPI document: no input may cause a 5xx,
and every answer must match what the document promises."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from monitor.openapi import openapi_document
from tests.conftest import Monitor, fuzz_auth

# The download streams as many bytes as asked for (up to 1 GiB): fuzzing it would only
# measure loopback bandwidth. Its bounds are tested directly in test_monitor_api.py.
schema = schemathesis.openapi.from_dict(openapi_document()).exclude(path="/api/v1/probe/download")


@pytest.fixture(scope="module")
def fuzz_token(shared_monitor: Monitor) -> str:
    return shared_monitor.token("client", "c-fuzz")


# Bodies whose validity no JSON Schema can state: a WebRTC offer is SDP, which the monitor's
# WebRTC stack parses and answers 400 when it cannot. Every other check still applies there.
SEMANTIC_BODIES = {"/api/v1/link/rtc"}


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_answers_every_input_as_documented(case: schemathesis.Case, shared_monitor: Monitor, fuzz_token: str) -> None:
    excluded = [positive_data_acceptance] if case.path in SEMANTIC_BODIES else []
    case.call_and_validate(base_url=shared_monitor.url, headers=fuzz_auth(case, fuzz_token), excluded_checks=excluded)


# The staff-only listings, with an it token (the client token above meets 403 there). Sessions,
# trends and enrollments have staff fuzzers of their own (test_sessions_api.py, test_trends.py).
staff_schema = schemathesis.openapi.from_dict(openapi_document()).include(path_regex=r"^/api/v1/(participants|alerts|agents)$")


@staff_schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_staff_listings_answer_every_input_as_documented(case: schemathesis.Case, shared_monitor: Monitor) -> None:
    case.call_and_validate(base_url=shared_monitor.url, headers=fuzz_auth(case, shared_monitor.kept_token("it", "it-fuzz")))

"""POST /api/v1/reports and the read-back endpoints, over real HTTP against a real monitor."""

from __future__ import annotations

import copy
import json
import time
import uuid

from monitor.http.reports import AgentList, ReportBatchAnswer, SampleList
from sessionready.typed import decode, encode
from tests.conftest import CHECK, Monitor, make_sample, new_token

SPOOL = {"pending": 3, "dropped_background": 2, "rejected": 1, "dropped_live": 0}


def sample_envelope(seq: int, kind: str = "background", **changes: object) -> dict:
    sample = encode(make_sample(**changes))  # type: ignore[arg-type]
    return {"report_id": uuid.uuid4().hex, "seq": seq, "kind": kind, "sample": sample}


def check_envelope(seq: int) -> dict:
    check = copy.deepcopy(CHECK)
    check["check_id"] = uuid.uuid4().hex
    return {"report_id": check["check_id"], "seq": seq, "kind": "check", "check": check}


def post(monitor: Monitor, token: str, reports: list, spool: dict = SPOOL) -> tuple[int, dict]:
    return monitor.json("POST", "/api/v1/reports", token, {"spool": spool, "reports": reports})


def agent_id(monitor: Monitor, token: str) -> str:
    return monitor.json("GET", "/api/v1/whoami", token)[1]["agent_id"]


def samples(monitor: Monitor, token: str, of_agent: str, query: str = "since=0") -> list[dict]:
    status, body = monitor.json("GET", f"/api/v1/agents/{of_agent}/samples?{query}", token)
    assert status == 200, body
    decode(SampleList, body)  # the answer is what the OpenAPI document says
    return body["samples"]


def test_batch_is_answered_per_report_in_order(shared_monitor: Monitor) -> None:
    token = new_token(shared_monitor, "client", "r-batch")
    good = sample_envelope(1, session_id="s-r-1")
    bad_value = sample_envelope(2, cpu_pct=50.0)
    bad_value["sample"]["machine"]["cpu_pct"] = 150
    mismatched = check_envelope(3)
    mismatched["report_id"] = uuid.uuid4().hex  # a check's report_id must be its check_id
    check = check_envelope(4)
    not_an_object = ["surprise"]
    live = sample_envelope(5, "live")
    status, body = post(shared_monitor, token, [good, bad_value, mismatched, check, not_an_object, live])
    assert status == 200, body
    answer = decode(ReportBatchAnswer, body)
    assert [r.status for r in answer.results] == ["stored", "rejected", "rejected", "stored", "rejected", "stored"]
    assert [r.report_id for r in answer.results] == [good["report_id"], bad_value["report_id"], mismatched["report_id"], check["report_id"], "", live["report_id"]]
    assert answer.results[1].error is not None and "sample.machine.cpu_pct" in answer.results[1].error
    assert "check_id" in (answer.results[2].error or "")
    stored = samples(shared_monitor, token, agent_id(shared_monitor, token))
    assert [(s["report_id"], s["seq"], s["kind"]) for s in stored] == [(good["report_id"], 1, "background"), (live["report_id"], 5, "live")]
    assert stored[0]["sample"] == good["sample"]
    # The check went where POST /api/v1/checks puts checks.
    status, body = shared_monitor.json("GET", f"/api/v1/checks/{check['report_id']}", token)
    assert status == 200 and body["report"] == check["check"]


def test_retried_batch_is_duplicate_and_changes_nothing(shared_monitor: Monitor) -> None:
    token = new_token(shared_monitor, "therapist", "r-retry")
    batch = [sample_envelope(1), check_envelope(2), sample_envelope(3, "live")]
    assert [r["status"] for r in post(shared_monitor, token, batch)[1]["results"]] == ["stored"] * 3
    before = samples(shared_monitor, token, agent_id(shared_monitor, token))
    status, body = post(shared_monitor, token, batch)
    assert status == 200 and [r["status"] for r in body["results"]] == ["duplicate"] * 3
    assert samples(shared_monitor, token, agent_id(shared_monitor, token)) == before
    # The same report twice within one batch is stored once.
    twice = sample_envelope(4)
    assert [r["status"] for r in post(shared_monitor, token, [twice, twice])[1]["results"]] == ["stored", "duplicate"]


def test_another_agents_report_id_is_rejected(shared_monitor: Monitor) -> None:
    owner = new_token(shared_monitor, "client", "r-owner")
    thief = new_token(shared_monitor, "client", "r-thief")
    sample, check = sample_envelope(1), check_envelope(2)
    assert [r["status"] for r in post(shared_monitor, owner, [sample, check])[1]["results"]] == ["stored", "stored"]
    changed = copy.deepcopy(sample)
    changed["sample"]["machine"]["cpu_pct"] = 99.0
    status, body = post(shared_monitor, thief, [changed, check])
    assert status == 200 and [r["status"] for r in body["results"]] == ["rejected", "rejected"]
    assert all("another agent" in r["error"] for r in body["results"])
    assert samples(shared_monitor, owner, agent_id(shared_monitor, owner))[0]["sample"]["machine"]["cpu_pct"] == 12.5
    assert samples(shared_monitor, thief, agent_id(shared_monitor, thief)) == []


def test_check_via_spool_and_via_checks_endpoint_is_stored_once(shared_monitor: Monitor) -> None:
    token = new_token(shared_monitor, "client", "r-both")
    first = check_envelope(1)
    assert shared_monitor.json("POST", "/api/v1/checks", token, first["check"])[0] == 201
    assert post(shared_monitor, token, [first])[1]["results"][0]["status"] == "duplicate"
    second = check_envelope(2)
    assert post(shared_monitor, token, [second])[1]["results"][0]["status"] == "stored"
    status, body = shared_monitor.json("POST", "/api/v1/checks", token, second["check"])
    assert status == 200 and body["duplicate"] is True
    status, body = shared_monitor.json("GET", f"/api/v1/agents/{agent_id(shared_monitor, token)}/checks", token)
    assert sorted(c["report"]["check_id"] for c in body["checks"]) == sorted([first["report_id"], second["report_id"]])


def test_malformed_outer_object_is_400_and_changes_nothing(shared_monitor: Monitor) -> None:
    token = new_token(shared_monitor, "client", "r-malformed")
    envelope = sample_envelope(1)
    cases = [
        (b"not json", "invalid_json", None),
        (b"[]", "invalid_field", None),
        (json.dumps({"reports": [envelope]}).encode(), "invalid_field", "spool"),
        (json.dumps({"spool": SPOOL}).encode(), "invalid_field", "reports"),
        (json.dumps({"spool": SPOOL, "reports": [envelope], "extra": 1}).encode(), "invalid_field", "extra"),
        (json.dumps({"spool": {**SPOOL, "pending": -1}, "reports": [envelope]}).encode(), "invalid_field", "spool.pending"),
        (json.dumps({"spool": SPOOL, "reports": {"0": envelope}}).encode(), "invalid_field", "reports"),
        (json.dumps({"spool": SPOOL, "reports": [envelope] * 201}).encode(), "invalid_field", "reports"),
    ]
    for body, code, field in cases:
        status, raw = shared_monitor.request("POST", "/api/v1/reports", token, body)
        error = json.loads(raw)["error"]
        assert status == 400 and error["code"] == code and error.get("field") == field, (body[:60], error)
    assert samples(shared_monitor, token, agent_id(shared_monitor, token)) == []
    status, _ = post(shared_monitor, token, [])
    assert status == 200  # an empty batch only reports the spool's numbers


def test_oversized_batch_is_413_and_200_samples_fit(shared_monitor: Monitor) -> None:
    token = new_token(shared_monitor, "client", "r-size")
    batch = [sample_envelope(i + 1, "live", session_id="s-2026-11-25-01") for i in range(200)]
    body = json.dumps({"spool": SPOOL, "reports": batch}).encode()
    assert len(body) < 200_000  # measured: about 150 kB for 200 full samples
    status, answer = shared_monitor.request("POST", "/api/v1/reports", token, body)
    assert status == 200 and all(r["status"] == "stored" for r in json.loads(answer)["results"])
    huge = json.dumps({"spool": SPOOL, "reports": [check_envelope(i + 1) for i in range(200)]}).encode()
    assert len(huge) > 256 * 1024  # why the forwarder also cuts batches by size
    status, raw = shared_monitor.request("POST", "/api/v1/reports", token, huge)
    assert status == 413 and json.loads(raw)["error"]["code"] == "too_large"
    assert len(samples(shared_monitor, token, agent_id(shared_monitor, token), "since=0&limit=5000")) == 200


def test_roles_and_visibility_of_samples(shared_monitor: Monitor) -> None:
    client_a = new_token(shared_monitor, "client", "r-vis-a")
    second_machine_a = new_token(shared_monitor, "client", "r-vis-a")
    therapist_b = new_token(shared_monitor, "therapist", "r-vis-b")
    it = new_token(shared_monitor, "it", "staff-1")
    metrics = new_token(shared_monitor, "metrics", "prom")
    assert post(shared_monitor, client_a, [sample_envelope(1)])[0] == 200
    a_id = agent_id(shared_monitor, client_a)
    assert len(samples(shared_monitor, second_machine_a, a_id)) == 1  # same participant, other machine
    assert len(samples(shared_monitor, it, a_id)) == 1
    for path in (f"/api/v1/agents/{a_id}/samples", "/api/v1/agents/nosuchagent/samples"):
        status, body = shared_monitor.json("GET", path, therapist_b)
        assert status == 404 and body["error"]["message"] == "no such agent"  # absent and not yours look alike
    assert shared_monitor.json("GET", "/api/v1/agents/nosuchagent/samples", it)[0] == 404
    assert shared_monitor.json("GET", f"/api/v1/agents/{a_id}/samples", metrics)[0] == 403
    for role_token in (it, metrics):
        assert post(shared_monitor, role_token, [sample_envelope(1)])[0] == 403
    for query, field in (("since=yesterday", "since"), ("kind=check", "kind"), ("limit=0", "limit"), ("limit=5001", "limit")):
        status, body = shared_monitor.json("GET", f"/api/v1/agents/{a_id}/samples?{query}", client_a)
        assert status == 400 and body["error"]["field"] == field


def test_samples_filter_by_time_and_kind(shared_monitor: Monitor) -> None:
    token = new_token(shared_monitor, "client", "r-filter")
    batch = [
        sample_envelope(1, "background", taken_at="2026-11-25T10:00:00+00:00"),
        sample_envelope(2, "live", taken_at="2026-11-25T10:00:02Z"),
        sample_envelope(3, "live", taken_at="2026-11-25T11:00:00+01:00"),  # the same instant as 10:00 UTC
    ]
    post(shared_monitor, token, batch)
    me = agent_id(shared_monitor, token)
    ten = 1795600800  # 2026-11-25T10:00:00Z
    assert [s["seq"] for s in samples(shared_monitor, token, me, f"since={ten}")] == [1, 3, 2]
    assert [s["seq"] for s in samples(shared_monitor, token, me, f"since={ten + 1}")] == [2]
    assert [s["seq"] for s in samples(shared_monitor, token, me, f"since={ten}&kind=live&limit=1")] == [3]
    assert samples(shared_monitor, token, me, "") == []  # default: the last hour, and these are from 2026


def test_agent_list_is_for_it_and_shows_status(shared_monitor: Monitor) -> None:
    token = new_token(shared_monitor, "therapist", "r-status")
    idle = new_token(shared_monitor, "client", "r-status-idle")
    it, admin = new_token(shared_monitor, "it", "staff-2"), new_token(shared_monitor, "admin", "staff-3")
    check = check_envelope(7)
    check["check"]["machine"] = None
    batch = [sample_envelope(5), sample_envelope(6, "live"), check]
    batch[1]["sample"]["agent"]["version"] = "0.2.0"
    batch[1]["sample"]["machine"]["link_type"] = "wired"
    started = time.time()
    post(shared_monitor, token, batch, {"pending": 40, "dropped_background": 3, "rejected": 2, "dropped_live": 1})
    for forbidden in (token, new_token(shared_monitor, "metrics", "prom")):
        assert shared_monitor.json("GET", "/api/v1/agents", forbidden)[0] == 403
    for staff in (it, admin):
        status, body = shared_monitor.json("GET", "/api/v1/agents", staff)
        assert status == 200
        agents = {a.agent_id: a for a in decode(AgentList, body).agents}
        mine = agents[agent_id(shared_monitor, token)]
        assert (mine.role, mine.participant_id, mine.online, mine.last_seq) == ("therapist", "r-status", True, 7)
        # The newest report with software info is the check (seq 7); the newest with a link is seq 6.
        assert (mine.version, mine.os, mine.link_type) == ("0.1.0", "linux", "wired")
        assert mine.spool is not None and (mine.spool.pending, mine.spool.dropped_background, mine.spool.rejected, mine.spool.dropped_live) == (40, 3, 2, 1)
        assert mine.last_seen is not None and started - 1 <= mine.last_seen <= time.time() + 1
        never = agents[agent_id(shared_monitor, idle)]
        assert (never.online, never.last_seen, never.spool) == (False, None, None)
        assert all(a.role in ("client", "therapist") for a in agents.values())


def test_metrics_count_reports_and_export_agent_spools(shared_monitor: Monitor) -> None:
    metrics = new_token(shared_monitor, "metrics", "prom")

    def scrape() -> dict[str, float]:
        return shared_monitor.metrics(metrics)

    before = scrape()
    key = 'sessionready_ingest_reports_total{kind="%s",result="%s"}'
    assert key % ("live", "duplicate") in before  # exported before anything happened
    token = new_token(shared_monitor, "client", "r-metrics")
    bad = sample_envelope(2)
    del bad["sample"]["taken_at"]
    live = sample_envelope(1, "live")
    post(shared_monitor, token, [live, bad, ["x"]], {"pending": 9, "dropped_background": 4, "rejected": 0, "dropped_live": 2})
    post(shared_monitor, token, [live], {"pending": 8, "dropped_background": 5, "rejected": 1, "dropped_live": 2})
    after = scrape()
    delta = {k: after[k] - before.get(k, 0.0) for k in after if k.startswith("sessionready_ingest_reports_total")}
    assert delta[key % ("live", "stored")] == 1 and delta[key % ("live", "duplicate")] == 1
    assert delta[key % ("background", "rejected")] == 1 and delta[key % ("unknown", "rejected")] == 1
    me = agent_id(shared_monitor, token)
    labels = f'agent_id="{me}",participant_id="r-metrics"'
    assert after[f"sessionready_agent_spool_pending_reports{{{labels}}}"] == 8
    assert after[f'sessionready_agent_spool_dropped_reports_total{{agent_id="{me}",kind="background",participant_id="r-metrics"}}'] == 5
    assert after[f'sessionready_agent_spool_dropped_reports_total{{agent_id="{me}",kind="live",participant_id="r-metrics"}}'] == 2
    assert after[f"sessionready_agent_spool_rejected_reports_total{{{labels}}}"] == 1
    assert abs(after[f"sessionready_agent_last_seen_timestamp_seconds{{{labels}}}"] - time.time()) < 60


def test_openapi_describes_the_report_endpoints(shared_monitor: Monitor) -> None:
    document = shared_monitor.json("GET", "/api/v1/openapi.json")[1]
    for path in ("/api/v1/reports", "/api/v1/agents", "/api/v1/agents/{agent_id}/samples"):
        assert path in document["paths"]
    schemas = document["components"]["schemas"]
    batch = document["paths"]["/api/v1/reports"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert batch["properties"]["reports"]["maxItems"] == 200 and batch["additionalProperties"] is False
    assert {"ReportEnvelope", "ReportResult", "SpoolStatus", "Sample", "AgentListing"} <= set(schemas)

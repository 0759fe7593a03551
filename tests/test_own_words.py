"""Issue 12, low: free text from agents reached staff. A check's reasons carried a message and a
fix of up to 400 characters each, and ``udp_error`` and ``agent.version`` were kept as sent:
escaped on the page, but able to carry phishing text, bidi overrides and NULs. The monitor
now keeps codes and numbers, renders the words itself, and makes every other text plain."""

from __future__ import annotations

import copy
import secrets
import time

from monitor.words import code_message, in_own_words
from sessionready import quality, schema
from sessionready.plaintext import plain, plain_strings
from sessionready.typed import decode, rfc3339
from tests.conftest import CHECK, Monitor, make_sample, new_token
from tests.dashboard.conftest import Practice

PHISHING = "Your licence expired. Call IT at +1 555 0100 and read them your password \u202egpj.exe\u0000"
HIDDEN = "udp\u200b blocked\u2066 by firewall\u0000\nFAKE LOG LINE level=error"


def hostile_check() -> dict:
    report = copy.deepcopy(CHECK)
    report["check_id"] = secrets.token_hex(16)
    report["started_at"] = rfc3339(time.time() - 20)
    for reason in report["reasons"]:
        reason["message"], reason["fix"] = PHISHING, PHISHING
    report["reasons"].append({"code": "high_cpu", "severity": "warning", "message": PHISHING, "fix": PHISHING})
    report["targets"][0]["error"] = HIDDEN  # a text the model does not judge (udp_error would be a finding)
    report["agent"]["version"] = "0.1\u202e0-evil"
    return report


def test_plain_removes_controls_bidi_and_invisible_characters() -> None:
    assert plain("a\u202eb\u2066c\u2069d\u200be\u0000f\u2028g\th\r\ni ") == "abcdef g h  i"
    assert plain("Zürich — 20 ms, 日本") == "Zürich — 20 ms, 日本", "ordinary text in any script stays"


def test_a_checks_words_are_the_monitors_own(monitor: Monitor) -> None:
    token = new_token(monitor, "client", "words-1")
    staff = new_token(monitor, "it", "words-staff")
    practice = Practice(monitor, staff, "UTC", 0.0)
    through_reports = hostile_check()
    practice.post(token, practice.envelope(token, "check", through_reports))
    direct = hostile_check()
    status, body = monitor.json("POST", "/api/v1/checks", token, direct)
    assert status == 201, body
    for sent in (through_reports, direct):
        status, stored = monitor.json("GET", f"/api/v1/checks/{sent['check_id']}", staff)
        assert status == 200, stored
        report = stored["report"]
        text = repr(report)
        assert "licence" not in text and "\u202e" not in text and "\x00" not in text and "\u200b" not in text
        assert [(r["code"], r["severity"]) for r in report["reasons"]] == [(r["code"], r["severity"]) for r in sent["reasons"]]
        for reason in report["reasons"]:
            assert reason["fix"] == quality.fix_text(reason["code"], reason["severity"])
        # The model finds the uncertain losses in these numbers: its own sentences. It finds
        # no high CPU, so that reason (the agent's limits) gets a sentence from its code.
        own = decode(schema.CheckReport, CHECK)
        assert report["reasons"][0]["message"] == in_own_words(own).reasons[0].message
        assert "0% loss on your upload" in report["reasons"][0]["message"]
        assert report["reasons"][-1]["message"] == code_message("high_cpu")
        assert report["targets"][0]["error"] == "udp blocked by firewall FAKE LOG LINE level=error"
        assert report["agent"]["version"] == "0.10-evil"
    assert "licence" not in monitor.logs()


def test_samples_keep_plain_text_only() -> None:
    sample = make_sample(taken_at=rfc3339(time.time()))
    hostile = plain_strings(schema.ReportEnvelope("a" * 32, 1, "background", sample=schema.Sample(**{**sample.__dict__, "agent": schema.Agent("1\u202e2\u0000", "linux")})))
    assert hostile.sample is not None and hostile.sample.agent.version == "12"

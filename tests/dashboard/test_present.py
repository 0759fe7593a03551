"""The dashboard's pure parts: flags, times, units, figures, the live banner, config, logins;
and its HTTP client against a real monitor."""

from __future__ import annotations

import os
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dashboard.api import ApiFailure, MonitorApi
from dashboard.config import DashboardConfig, load_dashboard_config, monitor_base_url, secret_key
from dashboard.figures import METRICS, figure, latest
from dashboard.present import (
    active_live_causes,
    check_age,
    clock_time,
    day_in,
    end_views,
    flag,
    number,
    percent,
    relative_start,
    session_banner,
    timeline,
    today_rows,
)
from sessionready.config import ConfigError
from tests.conftest import Monitor

BERLIN = ZoneInfo("Europe/Berlin")
T0 = 1_774_000_000.0  # 2026-03-20T09:46:40Z


def test_every_flag_has_an_icon_and_a_word_not_only_a_colour() -> None:
    shown = {state: flag(state) for state in ("ready", "at_risk", "not_ready", "unknown")}
    assert [(f.icon, f.label) for f in shown.values()] == [("✔", "Ready"), ("⚠", "At risk"), ("✖", "Not ready"), ("?", "Unknown")]
    assert len({f.css_class for f in shown.values()}) == 4
    assert flag(None).label == "Not assessed"


def test_relative_times_read_as_people_say_them() -> None:
    assert relative_start(T0 + 25 * 60, 3000, "scheduled", T0) == "in 25 min"
    assert relative_start(T0 + 65 * 60, 3000, "scheduled", T0) == "in 1 h 5 min"
    assert relative_start(T0 - 5 * 60, 3000, "live", T0) == "started 5 min ago"
    assert relative_start(T0 - 5 * 60, 3000, "cancelled", T0) == "cancelled"
    assert relative_start(T0 - 90 * 60, 3000, "scheduled", T0) == "was due 1 h 30 min ago"
    assert check_age(None) == "no check yet"
    assert check_age(3 * 86400) == "checked 3 days ago"


def test_times_are_in_the_viewers_zone_and_days_follow_it() -> None:
    assert clock_time(T0, BERLIN) == "10:46"
    assert clock_time(T0, ZoneInfo("America/New_York")) == "05:46"
    late = 1_774_047_000.0  # 22:50 UTC on the 20th: the 21st in Tokyo
    assert day_in(ZoneInfo("UTC"), late) == "2026-03-20"
    assert day_in(ZoneInfo("Asia/Tokyo"), late) == "2026-03-21"


def test_units_are_consistent() -> None:
    assert number(23.44, "ms") == "23 ms"
    assert number(None, "ms") == "—"
    assert percent(0.08) == "8.0 %"
    assert number(4.312, "MOS") == "4.31 / 5"
    assert number(-52.5, "dBFS") == "-52 dBFS"
    assert number(-0.3, "ms") == "0 ms" and number(-0.04, "%", 1) == "0.0 %", "never a negative zero (delay under load)"
    assert number(-0.6, "ms") == "-1 ms"


def session(session_id: str, start: str, state: str = "scheduled", risk: dict | None = None) -> dict:
    return {"session_id": session_id, "therapist_id": "t-1", "client_id": "c-1", "start": start, "planned_duration_s": 3000, "state": state, "risk": risk}


def test_today_rows_come_in_time_order_and_risky_ones_stand_out() -> None:
    reason = {"end": "client", "cause": "high_upload_loss", "severity": "critical", "message": "The client's connection loses 8.0 % of packets upstream.", "action": "Ask the client to ..."}
    rows = today_rows(
        [
            session("s-late", "2026-03-20T11:00:00Z", risk={"state": "ready", "live_state": None, "reasons": []}),
            session("s-early", "2026-03-20T10:00:00Z", risk={"state": "not_ready", "live_state": None, "reasons": [reason]}),
            session("s-new", "2026-03-20T12:00:00Z"),
        ],
        BERLIN,
        T0,
    )
    assert [r.session_id for r in rows] == ["s-early", "s-late", "s-new"]
    assert [r.time for r in rows] == ["11:00", "12:00", "13:00"]
    assert [r.stands_out for r in rows] == [True, False, False]
    assert rows[0].reasons == (("✖", "Client", reason["message"], reason["action"]),)
    assert rows[2].flag.label == "Not assessed"


def end(role: str, state: str, check_age_s: float | None, checked_at: str | None) -> dict:
    check_id = None if checked_at is None else "0" * 32
    return {"role": role, "participant_id": f"{role[0]}-1", "state": state, "check_age_s": check_age_s, "online": True, "live_mos": None, "checked_at": checked_at, "check_id": check_id}


def test_each_ends_flag_comes_from_the_list_with_its_check_counted_from_now() -> None:
    risk = {
        "state": "not_ready", "live_state": None, "reasons": [],
        # Assessed a while ago: the check was 2 min old then, and is 12 min old at T0.
        "client": end("client", "not_ready", 120.0, "2026-03-20T09:34:40Z"),
        "therapist": end("therapist", "unknown", None, None),
    }  # fmt: skip
    ended, upcoming = today_rows([session("s-1", "2026-03-20T10:00:00Z", risk=risk), session("s-0", "2026-03-20T08:00:00Z", "ended", risk)], BERLIN, T0)
    assert [(e.role, e.flag.label, e.check_age) for e in upcoming.ends] == [("client", "Not ready", "checked 12 min ago"), ("therapist", "Unknown", "no check yet")]
    assert ended.ends == ()  # over: its ends' flags no longer matter
    assert [e.check_age for e in end_views(risk)] == ["checked 2 min ago", "no check yet"]  # without a now: the age at the evaluation
    older = {**risk, "client": {**risk["client"], "checked_at": None}}  # from a monitor without checked_at
    assert [e.check_age for e in end_views(older, T0)] == ["checked 2 min ago", "no check yet"]


def live_sample(end: str, at: float, rtt: float | None, loss_up: float = 0.0) -> dict:
    network = None if rtt is None else {"packets_sent": 20, "packets_received": 20, "rtt_p50_ms": rtt, "rtt_p95_ms": rtt, "jitter_up_ms": 1.0, "jitter_down_ms": 3.0, "loss_up": loss_up, "loss_down": 0.0, "mos": 4.3}
    sample = {"network": network, "machine": {"cpu_pct": 40.0, "battery_pct": 50.0, "battery_charging": True}, "traffic_mbps": {"up": 1.2, "down": 2.5}, "room": {"noise_floor_dbfs": -50.0, "snr_db": 20.0, "calibrated": False}}
    return {"end": end, "received_at": at, "sample": sample}


def test_the_live_figures_have_a_line_per_end_with_gaps_where_nothing_was_measured() -> None:
    samples = [live_sample("client", T0, 20.0), live_sample("therapist", T0 + 1, 30.0), live_sample("client", T0 + 2, None), live_sample("client", T0 + 4, 25.0, loss_up=0.05)]
    rtt = next(m for m in METRICS if m.key == "rtt")
    fig = figure(samples, rtt, BERLIN)
    assert [t.name for t in fig.data] == ["Client", "Therapist"]
    assert list(fig.data[0].y) == [20.0, None, 25.0]
    assert fig.data[0].line.dash != fig.data[1].line.dash  # told apart without colour
    assert "(ms)" in fig.layout.title.text
    now = latest(samples)
    assert now["client"]["rtt"] == "25 ms" and now["client"]["loss"] == "5.0 %" and now["client"]["jitter"] == "3.0 ms"
    assert now["therapist"]["battery"] == "50 % (charging)"
    assert latest([])["client"]["mos"] == "—"


def alert(kind: str, cause: str, at: str, message: str) -> dict:
    return {"kind": kind, "cause": cause, "at": at, "created_at": at, "reasons": [{"code": cause, "end": "client", "message": message, "action": "Switch to audio only."}]}


def test_the_banner_names_what_is_degraded_now_not_what_recovered() -> None:
    alerts = [
        alert("live_recovered", "client_live_loss_burst", "2026-03-20T10:05:00Z", "The client's connection is good again."),
        alert("live_degraded", "client_live_loss_burst", "2026-03-20T10:01:00Z", "The client's connection is losing sound and picture in bursts (up to 15 %)."),
        alert("live_degraded", "client_live_low_audio_quality", "2026-03-20T10:06:00Z", "The client's sound quality has been below 3.6 out of 5 for 10 seconds (now 3.1)."),
    ]
    assert [m for m, _ in active_live_causes(alerts)] == ["The client's sound quality has been below 3.6 out of 5 for 10 seconds (now 3.1)."]
    live = session("s-1", "2026-03-20T10:00:00Z", "live")
    banner = session_banner(live, {"state": "ready", "live_state": "at_risk", "reasons": []}, alerts)
    assert banner is not None and "degraded" in banner.title and len(banner.lines) == 1
    assert "holding up" in session_banner(live, {"state": "ready", "live_state": "ready", "reasons": []}, []).title  # type: ignore[union-attr]
    assert session_banner(session("s-2", "2026-03-20T10:00:00Z", "ended"), None, alerts) is None


def test_the_timeline_merges_states_risk_changes_and_live_alerts_newest_first() -> None:
    detail = {
        "history": [{"at": "2026-03-20T08:00:00Z", "state": "scheduled", "reason": "created"}, {"at": "2026-03-20T10:00:00Z", "state": "live", "reason": "both_agents_live"}],
        "risk": {"history": [{"at": "2026-03-20T09:45:00Z", "state": "at_risk", "reasons": [{"message": "The client has not run a check yet."}]}]},
    }
    events = timeline(detail, [alert("live_degraded", "client_live_loss_burst", "2026-03-20T10:03:00Z", "bursts")])
    assert [e.title for e in events] == ["⚠ Degraded", "Live now", "⚠ At risk", "Scheduled"]
    assert events[1].lines == ("both ends connected",)


def test_config_refuses_plain_http_to_another_machine_and_unknown_keys(tmp_path: Path) -> None:
    assert monitor_base_url(DashboardConfig(monitor_url="http://127.0.0.1:8470/")) == "http://127.0.0.1:8470"
    with pytest.raises(ConfigError, match="clear text"):
        monitor_base_url(DashboardConfig(monitor_url="http://monitor.example.org:8470"))
    assert monitor_base_url(DashboardConfig(monitor_url="http://monitor.example.org:8470", allow_insecure_http=True))
    path = tmp_path / "dashboard.toml"
    path.write_text('[dashboard]\nmonitor_url = "https://m.example.org"\nprot = 1\n')
    with pytest.raises(ConfigError, match="prot"):
        load_dashboard_config(path)
    path.write_text('[dashboard]\nmonitor_url = "https://m.example.org"\ntime_zone = "Mars/Olympus"\n')
    with pytest.raises(ConfigError, match="time_zone"):
        load_dashboard_config(path)


def test_the_sample_config_loads() -> None:
    config = load_dashboard_config(Path(__file__).parents[2] / "dashboard" / "dashboard.sample.toml")
    assert config == DashboardConfig(monitor_url="https://monitor.example.org:8470")


def test_the_secret_is_created_private_once_and_kept(tmp_path: Path) -> None:
    config = DashboardConfig(monitor_url="http://127.0.0.1:1", secret_key_file=str(tmp_path / "state" / "secret.key"))
    first = secret_key(config)
    assert len(first) >= 64 and os.stat(tmp_path / "state" / "secret.key").st_mode & 0o777 == 0o600
    assert secret_key(config) == first


def test_the_client_turns_monitor_answers_into_sentences(monitor: Monitor) -> None:
    api = MonitorApi(monitor.url, timeout_s=5)
    with pytest.raises(ApiFailure) as wrong:
        api.login("nobody.here", "not a real password")
    assert wrong.value.status == 401 and wrong.value.sentence.startswith("Wrong username or password")
    with pytest.raises(ApiFailure) as logged_out:
        api.sessions_of_day("sru1_" + "x" * 43, "2026-03-20", "UTC")
    assert logged_out.value.code == "logged_out"
    unreachable = MonitorApi("http://127.0.0.1:9", timeout_s=2)
    with pytest.raises(ApiFailure) as down:
        unreachable.sessions_of_day("t", "2026-03-20", "UTC")
    assert down.value.status == 0 and "not reachable" in down.value.sentence


def test_a_browsers_zone_name_never_breaks_a_page() -> None:
    from dashboard.present import zone_of

    assert zone_of("Europe/Berlin") == BERLIN
    # Unknown, empty, path-like and over-long names (5,000 letters once reached the file
    # system as a zone file's path: OSError) all read as UTC.
    for name in (None, "", "Mars/Olympus", "../../etc/passwd", "A" * 5000):
        assert zone_of(name) == ZoneInfo("UTC"), name[:20] if name else name

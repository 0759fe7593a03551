"""Prometheus metrics: a registry per application, collectors read their sources at scrape time.

Names follow Prometheus conventions: base units (seconds, bytes, ratios), ``_total`` for
counters. The per-agent series come from the store at scrape time, so every monitor process
sharing a store exports the same latest values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from monitor.reflector import ReflectorCounters
from monitor.store.core import StoredCheck
from monitor.store.protocols import RiskStore
from monitor.store.reports import AgentStatus
from sessionready.terms import VERDICTS


@dataclass(frozen=True)
class MonitorMetrics:
    registry: CollectorRegistry
    ingest: Counter  # labels: result = accepted | duplicate | rejected
    ingest_seconds: Histogram
    reports: Counter  # labels: kind = background | live | check | unknown, result = stored | duplicate | rejected


def build_metrics(
    reflector_counters: Callable[[], ReflectorCounters],
    latest_checks: Callable[[], list[StoredCheck]],
    agent_statuses: Callable[[], list[AgentStatus]] = list,
) -> MonitorMetrics:
    registry = CollectorRegistry()
    ingest = Counter(
        "sessionready_ingest_checks",
        "Check reports posted to the monitor, by outcome.",
        ["result"],
        registry=registry,
    )
    for result in ("accepted", "duplicate", "rejected"):
        ingest.labels(result)  # export zeros from the start, so rates work from the first scrape
    ingest_seconds = Histogram(
        "sessionready_ingest_duration_seconds",
        "Time to validate and store one check report.",
        registry=registry,
        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
    )
    reports = Counter(
        "sessionready_ingest_reports",
        "Reports from agents' spools (POST /api/v1/reports), by kind and outcome.",
        ["kind", "result"],
        registry=registry,
    )
    for kind in ("background", "live", "check", "unknown"):
        for result in ("stored", "duplicate", "rejected"):
            reports.labels(kind, result)
    registry.register(ReflectorCollector(reflector_counters))
    registry.register(LatestCheckCollector(latest_checks))
    registry.register(AgentStatusCollector(agent_statuses))
    return MonitorMetrics(registry, ingest, ingest_seconds, reports)


class ReflectorCollector:
    def __init__(self, counters: Callable[[], ReflectorCounters]) -> None:
        self._counters = counters

    def collect(self) -> Iterable[Metric]:
        counters = self._counters()
        family = CounterMetricFamily(
            "sessionready_reflector_packets",
            "UDP datagrams handled by the reflector, by outcome.",
            labels=["result"],
        )
        family.add_metric(["answered"], counters.answered)
        family.add_metric(["dropped_bad_key"], counters.dropped_bad_key)
        family.add_metric(["dropped_malformed"], counters.dropped_malformed)
        family.add_metric(["dropped_wrong_source"], counters.dropped_wrong_source)
        family.add_metric(["dropped_rate_limited"], counters.dropped_rate_limited)
        family.add_metric(["send_failed"], counters.send_failed)
        yield family


class LatestCheckCollector:
    """The most recent check of every agent whose token is not revoked."""

    def __init__(self, latest_checks: Callable[[], list[StoredCheck]]) -> None:
        self._latest_checks = latest_checks

    def collect(self) -> Iterable[Metric]:
        labels = ["agent_id", "participant_id"]

        def gauge(name: str, documentation: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"sessionready_check_{name}", documentation, labels=labels + list(extra))

        timestamp = gauge("timestamp_seconds", "When the monitor received the latest check (unix time).")
        duration = gauge("duration_seconds", "How long the latest check ran.")
        verdict = gauge("verdict", "Latest check's verdict: 1 for the verdict it had, 0 for the others.", ("verdict",))
        rtt = gauge("rtt_seconds", "Round-trip time to the monitor in the latest check.", ("stat",))
        jitter = gauge("jitter_seconds", "RFC 3550 interarrival jitter J (its last value) in the latest check; the verdict judges jitter_mean_seconds when present.", ("direction",))
        jitter_mean = gauge("jitter_mean_seconds", "Mean |D| (transit-time change between consecutive probes) in the latest check: the jitter its verdict judged; absent for a check from before it was measured.", ("direction",))
        loss = gauge("loss_ratio", "Packet loss ratio in the latest check.", ("direction",))
        throughput = gauge("throughput_bytes_per_second", "Sustained TCP throughput in the latest check.", ("direction",))
        loaded = gauge(
            "loaded_latency_increase_seconds",
            "Increase of median RTT over idle while the link was busy (bufferbloat).",
            ("direction",),
        )
        mos = gauge("mos", "Expected audio MOS (1 to 4.5) from the ITU-T G.107 E-model.")
        r_factor = gauge("r_factor", "ITU-T G.107 transmission rating R (0 to 100).")
        cpu = gauge("cpu_busy_ratio", "Whole-machine CPU use before the check (0 to 1).")
        memory = gauge("memory_available_ratio", "Share of memory available (0 to 1).")
        swap = gauge("swap_bytes_per_second", "Swap traffic, in plus out.")
        battery = gauge("battery_ratio", "Battery charge (0 to 1); absent without a battery.")
        charging = gauge("battery_charging", "1 when on mains power, 0 on battery.")
        link = gauge("link_info", "1 for the type of the connection carrying the default route.", ("type",))
        signal = gauge("wifi_signal_dbm", "Wi-Fi received signal strength in dBm.")
        background = gauge("background_traffic_bytes_per_second", "Traffic on the link before the check sent anything.", ("direction",))
        room_available = gauge("room_available", "1 when the microphone could be used, else 0.")
        room_level = gauge(
            "room_level_dbfs",
            "Room sound levels in dBFS(A) (dBA when calibrated): laeq, l90 (noise floor), l10, lmax.",
            ("stat", "calibrated"),
        )
        room_voice = gauge("room_voice_ratio", "Share of frames with other voices while the person was quiet.")
        room_snr = gauge("room_speech_to_noise_db", "The person's speech over the noise floor, in dB.")
        for check in self._latest_checks():
            key = [check.agent_id, check.participant_id]
            report = check.report
            network = report["network"]
            timestamp.add_metric(key, check.received_at)
            duration.add_metric(key, report["duration_s"])
            for name in VERDICTS:
                verdict.add_metric(key + [name], 1.0 if report["verdict"] == name else 0.0)
            if network["rtt_ms"]:
                for stat in ("min", "p50", "p95"):
                    rtt.add_metric(key + [stat], network["rtt_ms"][stat] / 1000)
            for direction in ("up", "down"):
                if network["jitter_ms"] and network["jitter_ms"][direction] is not None:
                    jitter.add_metric(key + [direction], network["jitter_ms"][direction] / 1000)
                if network.get("jitter_mean_ms") and network["jitter_mean_ms"][direction] is not None:
                    jitter_mean.add_metric(key + [direction], network["jitter_mean_ms"][direction] / 1000)
                if network["loss"]:
                    loss.add_metric(key + [direction], network["loss"][direction])
                if network["throughput_mbps"][direction] is not None:
                    throughput.add_metric(key + [direction], network["throughput_mbps"][direction] * 1e6 / 8)
                if network["loaded_latency_ms"][direction] is not None:
                    loaded.add_metric(key + [direction], network["loaded_latency_ms"][direction] / 1000)
            if report["quality"]["mos"] is not None:
                mos.add_metric(key, report["quality"]["mos"])
            if report["quality"]["r_factor"] is not None:
                r_factor.add_metric(key, report["quality"]["r_factor"])
            machine = report.get("machine")
            if machine:
                _add(cpu, key, machine["cpu_pct"], 0.01)
                _add(memory, key, machine["memory_available_pct"], 0.01)
                _add(swap, key, machine["swap_bytes_per_s"])
                _add(battery, key, machine["battery_pct"], 0.01)
                if machine["battery_charging"] is not None:
                    charging.add_metric(key, 1.0 if machine["battery_charging"] else 0.0)
                link.add_metric(key + [machine["link"]["type"]], 1.0)
                _add(signal, key, machine["link"]["wifi_signal_dbm"])
                for direction in ("up", "down"):
                    _add(background, key + [direction], machine["background_traffic_mbps"][direction], 1e6 / 8)
            room = report.get("room")
            if room:
                room_available.add_metric(key, 1.0 if room["available"] else 0.0)
                calibrated = "true" if room["calibrated"] else "false"
                for stat in ("laeq", "l90", "l10", "lmax"):
                    _add(room_level, key + [stat, calibrated], room[f"{stat}_dbfs"])
                _add(room_voice, key, room["voice_ratio"])
                _add(room_snr, key, room["snr_db"])
        yield from (timestamp, duration, verdict, rtt, jitter, jitter_mean, loss, throughput, loaded, mos, r_factor)
        yield from (cpu, memory, swap, battery, charging, link, signal, background)
        yield from (room_available, room_level, room_voice, room_snr)


class AgentStatusCollector:
    """Each agent's last contact (its latest batch or check) and its spool's numbers, from its
    latest batch (agents whose token is not revoked; spool numbers once it has sent a batch)."""

    def __init__(self, agent_statuses: Callable[[], list[AgentStatus]]) -> None:
        self._agent_statuses = agent_statuses

    def collect(self) -> Iterable[Metric]:
        labels = ["agent_id", "participant_id"]
        last_seen = GaugeMetricFamily(
            "sessionready_agent_last_seen_timestamp_seconds", "The agent's last contact: when its latest batch or check arrived (unix time).", labels=labels
        )
        pending = GaugeMetricFamily(
            "sessionready_agent_spool_pending_reports", "Reports waiting in the agent's spool when its latest batch left.", labels=labels
        )
        # The agent counts these since its spool file was created: counters that reset only
        # when the spool is recreated, which rate() handles like a process restart.
        dropped = CounterMetricFamily(
            "sessionready_agent_spool_dropped_reports",
            "Samples the agent dropped because its spool was full (oldest background first, then live).",
            labels=labels + ["kind"],
        )
        rejected = CounterMetricFamily(
            "sessionready_agent_spool_rejected_reports", "Reports of the agent the monitor rejected as invalid.", labels=labels
        )
        for status in self._agent_statuses():
            if status.revoked_at is not None or status.last_seen is None:
                continue
            key = [status.agent_id, status.participant_id]
            last_seen.add_metric(key, status.last_seen)
            if status.spool_pending is None:
                continue  # only checks so far: the spool's numbers are unknown, not zero
            pending.add_metric(key, status.spool_pending)
            dropped.add_metric(key + ["background"], status.spool_dropped_background or 0)
            dropped.add_metric(key + ["live"], status.spool_dropped_live or 0)
            rejected.add_metric(key, status.spool_rejected or 0)
        yield from (last_seen, pending, dropped, rejected)


def _add(family: GaugeMetricFamily, labels: list[str], value: float | None, scale: float = 1.0) -> None:
    if value is not None:
        family.add_metric(labels, value * scale)


@dataclass(frozen=True)
class AlertMetrics:
    events: Counter  # sessionready_alerts_total, labels: result = queued | deduplicated
    deliveries: Counter  # sessionready_alert_deliveries_total, labels: result = sent | retried | failed


def build_alert_metrics(registry: CollectorRegistry, pending_deliveries: Callable[[], int]) -> AlertMetrics:
    """Alert counters and the outbox gauge, on the application's registry (issue 5, alerts)."""
    events = Counter(
        "sessionready_alerts",
        "Risk transitions handed to the alerter: queued for delivery, or deduplicated (a repeat).",
        ["result"],
        registry=registry,
    )
    deliveries = Counter(
        "sessionready_alert_deliveries",
        "Webhook delivery attempts by outcome; failed counts deliveries given up.",
        ["result"],
        registry=registry,
    )
    for result in ("queued", "deduplicated"):
        events.labels(result)
    for result in ("sent", "retried", "failed"):
        deliveries.labels(result)
    registry.register(PendingDeliveriesCollector(pending_deliveries))
    return AlertMetrics(events, deliveries)


def build_retention_metrics(registry: CollectorRegistry, kinds: Iterable[str]) -> Callable[[str, int], None]:
    """Rows the retention job deleted, per kind: how it tells it ``counted(kind, rows)``."""
    deleted = Counter("sessionready_retention_deleted_rows", "Rows deleted because they outlived their retention, per kind.", ["kind"], registry=registry)
    for kind in kinds:
        deleted.labels(kind)
    return lambda kind, rows: deleted.labels(kind).inc(rows)


class PendingDeliveriesCollector:
    """Webhook deliveries not yet sent or given up, read from the store (shared by all monitors)."""

    def __init__(self, pending: Callable[[], int]) -> None:
        self._pending = pending

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily("sessionready_alert_deliveries_pending", "Webhook deliveries waiting to be sent or retried.")
        family.add_metric([], self._pending())
        yield family


def register_session_metrics(registry: CollectorRegistry, store: RiskStore) -> None:
    """Sessions by state and risk, and live sessions' current MOS per end, read at scrape time."""
    registry.register(SessionCollector(store))


class SessionCollector:
    def __init__(self, store: RiskStore) -> None:
        self._store = store

    def collect(self) -> Iterable[Metric]:
        sessions = GaugeMetricFamily(
            "sessionready_sessions",
            "Sessions by their own state (scheduled, live, ended, cancelled) and the risk engine's"
            " (ready, unknown, at_risk, not_ready; for live ones the live state; unassessed).",
            labels=["state", "risk"],
        )
        for state, risk, count in self._store.session_counts():
            sessions.add_metric([state, risk], count)
        mos = GaugeMetricFamily(
            "sessionready_live_session_mos",
            "The latest live MOS (1 to 4.5) of each end of each live session.",
            labels=["session_id", "therapist_id", "client_id", "end"],
        )
        for session_id, therapist, client, client_mos, therapist_mos in self._store.live_mos():
            for end, value in (("client", client_mos), ("therapist", therapist_mos)):
                if value is not None:
                    mos.add_metric([session_id, therapist, client, end], value)
        yield sessions
        yield mos

"""Live and background samples carry the jitter a check is judged on (mean |D| per direction), and
the monitor judges that figure when a sample has it; a sample from an older agent, without it, is
judged on RFC 3550's J as before (docs/quality-model.md, "Which jitter is judged").

Ground truth: streams whose transit times are written here, so each |D| is known by hand; the
real monitor application (``create_app``, both store back ends) for what is stored, read back
and judged.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from agents.daemon.samplers import LiveWindows, sample_network
from agents.probes.udp_stream import Probe
from monitor.alerts.config import AlertsConfig
from monitor.http.summary import SUMMARIES
from monitor.risk.engine import RecentSamples, assess_session
from monitor.risk.summary import SummaryInputs, read_sample, summarise
from sessionready import schema
from sessionready.typed import SchemaError, decode, encode
from tests.conftest import CONFIG, NOW, check, end, fine, make_sample, session
from tests.stores import StoreFactory
from tests.test_risk_scenarios import MINUTE, Clock, Practice, rfc3339

MS = 1_000_000


class ScriptedStream:
    """The seam ``LiveWindows`` reads (``probes``, ``forget_flow``): probes sent every 100 ms whose
    upstream transit is a steady 5 ms and whose downstream transit is scripted, in ms, per seq."""

    def __init__(self, down_ms: list[float]) -> None:
        self.probes_list = []
        for seq, down in enumerate(down_ms):
            sent = 10**12 + seq * 100 * MS
            reflector = 5 * 10**12 + seq * 100 * MS  # the reflector's own clock: upstream transit constant
            self.probes_list.append(Probe(seq, sent, sent + 5 * MS + round(down * MS), reflector, reflector, seq + 1))

    def probes(self, key: bytes, first_seq: int = 0) -> list[Probe]:
        return self.probes_list[first_seq:]

    def forget_flow(self, key: bytes) -> None:
        pass


def zigzag(count: int, d: float, start_high: bool = False) -> list[float]:
    """Downstream transits alternating 10 and 10 + d ms: every consecutive |D| is d."""
    return [10.0 + d if (i % 2 == 0) == start_high else 10.0 for i in range(count)]


def test_a_live_window_carries_its_own_mean_and_j_continues_across_windows() -> None:
    # Window 1: probes 0..19, transits 10, 10 + 29, ...: 19 |D| of 29 ms, mean 29 exactly; J
    # from 0 after 19 steps = 29 x (1 - (15/16)^19) = 29 x (1 - 0.293396) = 20.4915 ms.
    # Window 2: probes 20..39 zigzag by 31.5 ms starting low (10): its first |D| is against
    # probe 19 (10 + 29): 29, then 19 x 31.5: mean (29 + 598.5) / 20 = 31.375 ms, over the
    # 30 ms line. J continues: 31.5 - (31.5 - J')(15/16)^19 with J' = 20.4915 + (29 - 20.4915)
    # / 16 = 21.0233: 31.5 - 10.4767 x 0.293396 = 28.4262 ms, under the line: judged on J this
    # window would read fine; on the mean it does not.
    stream = ScriptedStream(zigzag(20, 29.0) + zigzag(20, 31.5))
    windows = LiveWindows(stream)  # type: ignore[arg-type]
    windows.add_flow(b"k")
    first = windows.take(stream.probes_list[20].sent_ns)
    second = windows.take(stream.probes_list[-1].sent_ns + 1)
    assert (first.sent, second.sent) == (20, 20)
    assert first.jitter_mean_down_ms == pytest.approx(29.0, abs=1e-9)
    assert first.jitter_down_ms == pytest.approx(29 * (1 - (15 / 16) ** 19), abs=1e-6)
    assert second.jitter_mean_down_ms == pytest.approx(31.375, abs=1e-9)
    assert second.jitter_down_ms == pytest.approx(28.4262, abs=0.0001)
    assert first.jitter_mean_up_ms == second.jitter_mean_up_ms == 0.0

    # The wire form carries both, and its MOS is computed from the mean, as a check's is (the
    # jitter buffer in the mouth-to-ear delay): the MOS of a window whose J were 31.375 (4.35),
    # not that of its J of 28.426 (4.36).
    wire = sample_network(second)
    assert (wire.jitter_down_ms, wire.jitter_mean_down_ms, wire.jitter_mean_up_ms) == (28.426, 31.375, 0.0)
    no_mean = replace(second, jitter_mean_up_ms=None, jitter_mean_down_ms=None)
    assert sample_network(no_mean).jitter_mean_down_ms is None
    assert wire.mos == sample_network(replace(no_mean, jitter_down_ms=31.375)).mos == 4.35
    assert sample_network(no_mean).mos == 4.36


def test_a_window_with_fewer_than_two_echoes_has_no_jitter_of_either_kind() -> None:
    stream = ScriptedStream(zigzag(21, 12.0))
    windows = LiveWindows(stream)  # type: ignore[arg-type]
    windows.add_flow(b"k")
    windows.take(stream.probes_list[20].sent_ns)  # window 1: probes 0..19
    lonely = windows.take(stream.probes_list[20].sent_ns + 1)  # window 2: probe 20 alone
    assert lonely.sent == 1 and lonely.jitter_down_ms is None and lonely.jitter_mean_down_ms is None


def network_json(j_down: float, mean_down: float | None) -> dict:
    """A background sample's network part, as stored; ``mean_down`` None: from an older agent,
    whose JSON has no ``jitter_mean_*`` keys at all."""
    network = {
        "packets_sent": 50, "packets_received": 50, "rtt_p50_ms": 20.0, "rtt_p95_ms": 24.0, "jitter_up_ms": 1.0,
        "jitter_down_ms": j_down, "loss_up": 0.0, "loss_down": 0.0, "mos": 4.3, "problem": None,
    }  # fmt: skip
    if mean_down is not None:
        network |= {"jitter_mean_up_ms": 1.0, "jitter_mean_down_ms": mean_down}
    return network


@pytest.mark.parametrize(
    ("j_down", "mean_down", "severity"),
    [
        (45.0, 29.999, None),  # the mean just under the warning line; J far over it
        (10.0, 30.001, "warning"),  # just over it; J far under
        (60.0, 49.999, "warning"),  # just under the critical line
        (10.0, 50.001, "critical"),  # just over it
        (30.001, None, "warning"),  # an older agent's sample: judged on J, as before
        (29.999, None, None),
        (50.001, None, "critical"),
    ],
)
def test_background_samples_are_judged_on_their_mean_when_they_carry_it(j_down: float, mean_down: float | None, severity: str | None) -> None:
    samples = RecentSamples.from_samples([network_json(j_down, mean_down)] * 3)
    assert samples.jitter_down_ms == (j_down if mean_down is None else mean_down)
    risk = assess_session(session(end("client", check(), samples=samples), fine("therapist")), CONFIG, NOW)
    found = [(r.cause, r.severity) for r in risk.reasons if r.cause == "recent_jitter"]
    assert found == ([] if severity is None else [("recent_jitter", severity)])
    # The wire schema takes the same dicts (with or without the new keys), and the typed form
    # is judged the same.
    typed = [decode(schema.SampleNetwork, network_json(j_down, mean_down))] * 3
    assert RecentSamples.from_samples(typed) == samples


def test_a_negative_or_absurd_sample_mean_is_refused() -> None:
    for bad in (-0.5, 700_000.0, "12", True):
        with pytest.raises(SchemaError, match="jitter_mean_down_ms"):
            decode(schema.SampleNetwork, {**network_json(5.0, 5.0), "jitter_mean_down_ms": bad})


T0 = 1_800_000_000.0


def live_json(k: int, *, mos: float, j_down: float, mean_down: float | None) -> dict:
    """The k-th 2 s live sample of an end (taken at T0 + 2k) as stored."""
    sample = encode(make_sample(taken_at=rfc3339(T0 + 2.0 * k), session_id="s-1"))
    sample["network"] = {**network_json(j_down, mean_down), "mos": mos}
    return sample


@pytest.mark.parametrize(
    ("j_down", "mean_down", "cause"),
    [
        (34.0, 29.999, "low_audio_quality"),  # J over the line, the mean just under: not jitter
        (26.0, 30.001, "jitter"),  # J under, the mean just over: jitter
        (30.001, None, "jitter"),  # an older agent's samples: J, as before
        (29.999, None, "low_audio_quality"),
    ],
)
def test_the_summary_names_jitter_by_the_judged_figure(j_down: float, mean_down: float | None, cause: str) -> None:
    # Sound stays low (MOS 3.2) for 20 s at the client's end: the tracker raises it, and the
    # summary names what explains it, here only the jitter can.
    def mos(k: int) -> float:
        return 3.2 if 10 < k <= 20 else 4.3

    samples = [
        read_sample(who, live_json(k, mos=mos(k) if who == "client" else 4.3, j_down=j_down if who == "client" else 2.0, mean_down=mean_down), T0 + 2.0 * k + 0.05)
        for who in ("client", "therapist")
        for k in range(1, 41)
    ]  # fmt: skip
    result = summarise(SummaryInputs("s-1", "t-1", "c-1", T0, 3000.0, T0, T0 + 200.0, None, tuple(samples)), T0 + 10_000)
    [stretch] = result.stretches
    judged = j_down if mean_down is None else mean_down
    assert (stretch.end, stretch.cause, stretch.worst_jitter_ms) == ("client", cause, round(judged, 1))


@pytest.mark.parametrize(
    ("low", "high", "mean_given", "cause"),
    [
        (24.0, 34.0, True, "low_audio_quality"),  # windows 24, 34, 24, ...: pooled 29, under the line
        (26.0, 36.0, True, "jitter"),  # pooled 31, over it
        (24.0, 34.0, False, "jitter"),  # an older agent's J: the worst window, as before
    ],
)
def test_a_stretch_is_judged_on_its_windows_pooled_not_on_its_worst_window(low: float, high: float, mean_given: bool, cause: str) -> None:
    # The ten low-sound windows (k = 11..20, 20 echoes each) alternate between two means; the
    # stretch's mean |D| is their echo-weighted mean, (low + high) / 2, as a check's idle phase
    # would read over the same 200 packets. The worst window alone is over 30 ms in all three.
    def jitter(k: int) -> float:
        return high if k % 2 else low

    samples = []
    for k in range(1, 41):
        low_sound = 10 < k <= 20
        j = jitter(k) if low_sound else 2.0
        client = live_json(k, mos=3.2 if low_sound else 4.3, j_down=j if not mean_given else 5.0, mean_down=j if mean_given else None)
        client["network"]["packets_received"] = 20
        samples.append(read_sample("client", client, T0 + 2.0 * k + 0.05))
        samples.append(read_sample("therapist", live_json(k, mos=4.3, j_down=2.0, mean_down=2.0), T0 + 2.0 * k + 0.05))
    result = summarise(SummaryInputs("s-1", "t-1", "c-1", T0, 3000.0, T0, T0 + 200.0, None, tuple(samples)), T0 + 10_000)
    [stretch] = result.stretches
    assert (stretch.end, stretch.cause, stretch.worst_jitter_ms) == ("client", cause, high)


@pytest.fixture
def practice(tmp_path: Path, stores: StoreFactory) -> Iterator[Practice]:
    p = Practice(tmp_path, Clock(float(int(time.time() // 60 * 60))), AlertsConfig(), stores)
    try:
        yield p
    finally:
        p.close()


def posted_sample(p: Practice, session_id: str | None, *, mos: float, j_down: float, mean_down: float | None) -> dict:
    sample = p.sample(session_id, mos=mos)
    sample["network"] = {**network_json(j_down, mean_down), "mos": mos}
    return sample


def test_a_monitor_stores_reads_back_and_judges_the_samples_mean(practice: Practice) -> None:
    p = practice
    start = p.clock.now + MINUTE
    p.session("s-j", "t-1", "c-1", start, minutes=1)
    t_token, c_token = p.token("therapist", "t-1"), p.token("client", "c-1")
    p.check(t_token)
    p.check(c_token)
    # Background samples before the session: the client's (a new agent) carry a mean of 31 ms
    # down and J 12; the therapist's (an older agent, no mean in its JSON) J 31. Each is judged
    # on its own figure by the pre-session risk, read from the store's rows and JSON.
    for _ in range(3):
        p.post(c_token, p.envelope(c_token, "background", posted_sample(p, None, mos=4.3, j_down=12.0, mean_down=31.0)))
        p.post(t_token, p.envelope(t_token, "background", posted_sample(p, None, mos=4.3, j_down=31.0, mean_down=None)))
    p.risk.evaluate()
    reasons = {(r["end"], r["cause"], r["severity"]) for r in p.risk_of("s-j")["reasons"] if r["cause"] == "recent_jitter"}
    assert reasons == {("client", "recent_jitter", "warning"), ("therapist", "recent_jitter", "warning")}

    # Live: both ends' sound low for 20 s; the client's samples say J 34 ms but a mean of 27
    # (under the line), the therapist's (older agent) J 34 alone.
    p.clock.now = start
    while p.clock.now < start + 40:
        p.clock.now += 2.0
        low = 10 < p.clock.now - start <= 30
        mos = 3.2 if low else 4.3
        p.post(c_token, p.envelope(c_token, "live", posted_sample(p, "s-j", mos=mos, j_down=34.0, mean_down=27.0)))
        p.post(t_token, p.envelope(t_token, "live", posted_sample(p, "s-j", mos=mos, j_down=34.0, mean_down=None)))
        p.risk.track_live()

    status, body = p.call("GET", f"/api/v1/sessions/s-j/samples?since={start:.0f}", p.staff)
    assert status == 200, body
    by_end = {e: [s["sample"]["network"] for s in body["samples"] if s["end"] == e] for e in ("client", "therapist")}
    assert len(by_end["client"]) == len(by_end["therapist"]) == 20
    assert all((n["jitter_down_ms"], n["jitter_mean_down_ms"]) == (34.0, 27.0) for n in by_end["client"])
    assert all((n["jitter_down_ms"], n["jitter_mean_down_ms"]) == (34.0, None) for n in by_end["therapist"])

    p.clock.now = start + MINUTE + 61  # both agents stopped: a minute after the planned end it ends
    p.risk.track_live()
    assert p.app[SUMMARIES].run_once() == 1
    status, summary = p.call("GET", "/api/v1/sessions/s-j/summary", p.staff)
    assert status == 200, summary
    causes = {(s["end"], s["cause"], s["worst_jitter_ms"]) for s in summary["stretches"]}
    assert causes == {("client", "low_audio_quality", 27.0), ("therapist", "jitter", 34.0)}
    [therapist] = [s for s in summary["stretches"] if s["end"] == "therapist"]
    assert "jitter up to 34 ms" in therapist["words"]

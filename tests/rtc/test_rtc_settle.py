"""The browser check's adaptive idle phase, decided by the monitor (docs/browser-check.md
section 3): the probes carry the page's phase and its echo arrival times (receipts), so the
monitor holds both sides' records while the stream runs and applies the CLI's stopping rule
(sessionready/settle.py) to them; every echo after the decision carries IDLE_OVER.

Streams recorded packet by packet on a fake clock: the page sends every 20 ms, the monitor
answers at once, echoes take 1 ms back. Expected stops worked from the rule's arithmetic
(docs/quality-model.md, "Adaptive length"): with 0 lost of n the Wilson upper bound is
z^2 / (n + z^2) = 3.8415 / (n + 3.8415), at or below 1 % from n = 381.
"""

from __future__ import annotations

import struct

import pytest

from monitor.rtc.records import (
    ECHO_HEAD,
    IDLE_OVER,
    PROBE_HEAD,
    RECEIPT,
    IdleRule,
    RtcStreams,
    StreamRecords,
    phase_runs,
)
from sessionready import quality, settle

ORIGIN_NS = 5_000_000_000  # the monitor's clock when the first probe arrives
PAGE_MS = 1000.0  # the page's clock when it sends the first probe
MAX_RECEIPTS = (172 - PROBE_HEAD.size) // RECEIPT.size  # 13 in a 172-byte probe


def probe(seq: int, sent_ms: float, phase: int, receipts: list[tuple[int, float]], length: int = 172) -> bytes:
    body = PROBE_HEAD.pack(1, phase, len(receipts), seq, sent_ms) + b"".join(RECEIPT.pack(s, a) for s, a in receipts)
    return body + bytes(length - len(body))


class Page:
    """A page and a monitor joined by a path that loses the probes and echoes it is told to."""

    def __init__(self, records: StreamRecords, lost_up: set[int] = frozenset(), lost_down: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        self.records, self.lost_up, self.lost_down = records, lost_up, lost_down
        self.received: list[tuple[int, float]] = []  # the page's echoes, [seq, arrival_ms]
        self.flags: dict[int, int] = {}  # seq -> the echo's flags byte
        self.seq = 0

    def send(self, phase: int = 1) -> None:
        seq, t_ms = self.seq, self.seq * 20.0
        self.seq += 1
        message = probe(seq, PAGE_MS + t_ms, phase, self.received[-MAX_RECEIPTS:])
        if seq in self.lost_up:
            return
        recv_ns = ORIGIN_NS + round(t_ms * 1e6) + 500_000
        echo = self.records.answer(message, recv_ns, lambda: recv_ns + 50_000)
        assert echo is not None and len(echo) == len(message)
        self.records.settle_idle(recv_ns + 60_000)
        if seq not in self.lost_down:
            self.flags[seq] = ECHO_HEAD.unpack_from(echo)[1]
            self.received.append((seq, PAGE_MS + t_ms + 1.05))

    def run_until_told(self, limit: int = 1000) -> int:
        """Send until an echo says the idle phase is over: the seq of that echo."""
        while self.seq < limit:
            self.send()
            told = [seq for seq, flags in self.flags.items() if flags & IDLE_OVER]
            if told:
                return told[0]
        raise AssertionError("the monitor never ended the idle phase")


def adaptive(min_s: float = 2.0, max_s: float = 10.0) -> StreamRecords:
    return StreamRecords("a" * 32, "link1", idle=IdleRule(settle.PhaseLimits(min_s, max_s)))


def test_a_clean_path_settles_once_one_percent_is_ruled_out() -> None:
    records = adaptive()
    page = Page(records)
    told = page.run_until_told()
    decision = records.idle.decision
    assert decision is not None and decision.stopped == "settled" and decision.unsettled == ()
    # 381 probes must be echoed and their receipts back: the receipt of probe 380 rides on
    # probe 381, sent 7.62 s after the first; the rule is asked every 0.2 s, so it stops
    # within 0.2 s after that (elapsed counts from the first probe's arrival).
    assert 7.62 <= decision.seconds <= 7.62 + 0.2 + 1e-9, decision
    # The word reaches the page on the very next echo, and on every echo after it.
    assert told == round(decision.seconds / 0.02) + 1 or told == round(decision.seconds / 0.02)
    page.send()
    assert page.flags[page.seq - 1] & IDLE_OVER
    assert not any(flags & IDLE_OVER for seq, flags in page.flags.items() if seq < told)


def test_loss_near_a_threshold_runs_to_the_maximum_and_says_what_is_unsettled() -> None:
    # One probe in 50 lost on the way up: 2 %, between the 1 % and 3 % lines. After 5 s, 250
    # probes and 5 lost: the Wilson interval 0.86-4.6 % straddles both lines (docs' formula).
    records = adaptive(2.0, 5.0)
    page = Page(records, lost_up={seq for seq in range(2000) if seq % 50 == 25})
    page.run_until_told()
    decision = records.idle.decision
    assert decision is not None and decision.stopped == "max_length"
    assert 5.0 <= decision.seconds <= 5.2 + 1e-9
    unsettled = {j.figure: j for j in decision.unsettled}
    assert "loss_up" in unsettled, decision.unsettled
    low, high = unsettled["loss_up"].low, unsettled["loss_up"].high
    assert low < quality.Thresholds().loss_warning_ratio and high > quality.Thresholds().loss_critical_ratio, (low, high)
    # The report's phases and the borderline reason the monitor adds from them.
    runs = phase_runs({"idle": (PAGE_MS, PAGE_MS + 5100.0), "download": (PAGE_MS + 5100.0, PAGE_MS + 7100.0), "upload": None}, records.idle)
    assert [(r.name, r.stopped, r.min_s, r.max_s) for r in runs] == [("idle", "max_length", 2.0, 5.0), ("download", "fixed_length", None, None)]
    assert runs[0].seconds == 5.1
    loss = next(u for u in runs[0].unsettled if u.figure == "loss_up")
    (reason,) = settle.borderline_reasons([(loss.figure, loss.low, loss.high)])
    assert reason.severity == "warning" and "loss on your upload" in reason.message, reason


def test_a_figure_that_already_fails_stops_at_the_minimum() -> None:
    # One probe in 8 lost on the way up (12.5 %): by 2 s its interval lies wholly above 3 %, the
    # verdict is "not ready" whatever else is measured, and the phase stops at its minimum.
    records = adaptive(2.0, 10.0)
    page = Page(records, lost_up={seq for seq in range(2000) if seq % 8 == 3})
    page.run_until_told()
    decision = records.idle.decision
    assert decision is not None and decision.stopped == "settled" and 2.0 <= decision.seconds <= 2.2 + 1e-9


def test_a_page_that_moves_on_first_ran_a_fixed_phase() -> None:
    records = adaptive()
    page = Page(records)
    for _ in range(150):  # 3 s of idle, not enough to settle 1 %
        page.send()
    for _ in range(10):
        page.send(phase=2)  # the page's download began: it ended the idle phase by itself
    assert records.idle.decision is None and records.idle.page_moved_on
    assert not any(flags & IDLE_OVER for flags in page.flags.values())
    (run,) = phase_runs({"idle": (PAGE_MS, PAGE_MS + 3000.0)}, records.idle)
    assert (run.stopped, run.seconds, run.min_s, run.max_s) == ("fixed_length", 3.0, None, None)


def test_a_page_that_does_not_say_its_phase_runs_it_fixed() -> None:
    """Phase byte 0 (a page from before the rule, tests/rtc/page_client.py): no receipts come
    either, so the rule would read every echo as lost; it is not asked at all."""
    records = adaptive()
    page = Page(records)
    for _ in range(600):
        page.send(phase=0)
    assert records.idle.decision is None and not any(flags & IDLE_OVER for flags in page.flags.values())


def test_without_a_rule_nothing_is_decided_or_flagged() -> None:
    records = StreamRecords("a" * 32, "link1")
    page = Page(records)
    for _ in range(600):
        page.send()
    assert records.idle is None and not any(flags & IDLE_OVER for flags in page.flags.values())
    (run,) = phase_runs({"idle": (PAGE_MS, PAGE_MS + 12000.0)}, None)
    assert (run.stopped, run.seconds) == ("fixed_length", 12.0)


def test_receipts_are_read_only_where_they_can_be_true() -> None:
    records = adaptive()
    clock = iter(range(ORIGIN_NS, ORIGIN_NS + 10**12, 20_000_000))
    for seq in range(3):
        now = next(clock)
        assert records.answer(probe(seq, PAGE_MS + seq * 20.0, 1, []), now, lambda n=now: n + 1) is not None
    # A count that does not fit the message: no receipt read, the probe still echoed.
    bad = bytearray(probe(3, PAGE_MS + 60.0, 1, [(0, 1001.0)]))
    struct.pack_into("!H", bad, 2, 200)
    now = next(clock)
    assert records.answer(bytes(bad), now, lambda: now + 1) is not None and records.arrival_ms == {}
    # A seq the monitor never echoed, a non-finite or impossible time: ignored; a true one kept,
    # and only its first report.
    now = next(clock)
    receipts = [(99, 1500.0), (1, float("nan")), (2, -5.0), (0, 1001.0), (0, 1900.0)]
    assert records.answer(probe(4, PAGE_MS + 80.0, 1, receipts), now, lambda: now + 1) is not None
    assert records.arrival_ms == {0: 1001.0}
    # A phase byte the contract does not have changes nothing.
    now = next(clock)
    records.answer(probe(5, PAGE_MS + 100.0, 9, []), now, lambda: now + 1)
    assert records.phase == 1


def test_the_registry_gives_each_stream_its_rule_and_the_phases_only_to_its_link() -> None:
    import asyncio

    class FakePeer:
        answer_sdp = "v=0"

        async def close(self) -> None:
            return None

    async def scenario() -> None:
        async def open_peer(records, offer, reached, ended):
            return FakePeer()

        streams = RtcStreams(open_peer, max_peers=4, max_seconds=60, ramp_s=1.0, idle_limits=settle.PhaseLimits(2.0, 10.0), thresholds=quality.Thresholds())
        rtc_id, _ = await streams.start("link1", "offer")
        records = streams.records(rtc_id)
        assert records is not None and records.idle is not None and records.idle.limits == settle.PhaseLimits(2.0, 10.0)
        assert streams.phases_for(rtc_id, "link2", {"idle": (0.0, 1.0)}) is None
        assert streams.phases_for(rtc_id, "link1", {"idle": (0.0, 1000.0)})[0].stopped == "fixed_length"
        fixed = RtcStreams(open_peer, max_peers=4, max_seconds=60, ramp_s=1.0)
        other, _ = await fixed.start("link1", "offer")
        assert fixed.records(other).idle is None
        await streams.aclose()
        await fixed.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize("count", [0, 1, 13])
def test_a_probe_with_receipts_is_still_a_voice_packet(count: int) -> None:
    """Receipts ride inside the 172 bytes the probe has anyway: the stream's packets stay the
    size of a voice packet, as on the lab's wire (tests/lab/test_rtc_loss.py counts by length)."""
    message = probe(0, PAGE_MS, 1, [(i, PAGE_MS + i) for i in range(count)])
    assert len(message) == 172


def test_the_idle_limits_are_configured_and_reach_the_page(tmp_path) -> None:
    from monitor.config import load_config
    from monitor.http.check_links import link_idle_limits, link_settings
    from sessionready.config import ConfigError

    config = tmp_path / "monitor.toml"
    config.write_text("[monitor]\nlink_udp_min_seconds = 3\nlink_udp_max_seconds = 8\n")
    loaded = load_config(config)
    assert link_idle_limits(loaded) == settle.PhaseLimits(3.0, 8.0)
    settings = link_settings(loaded)
    assert (settings.adaptive, settings.udp_min_seconds, settings.udp_max_seconds) == (True, 3.0, 8.0)
    config.write_text("[monitor]\nlink_adaptive = false\nlink_udp_seconds = 4\n")
    fixed = link_settings(load_config(config))
    assert (fixed.adaptive, fixed.udp_seconds, fixed.udp_min_seconds, fixed.udp_max_seconds) == (False, 4.0, None, None)
    assert link_idle_limits(load_config(config)) is None
    for text, key in (("link_udp_min_seconds = 9\nlink_udp_max_seconds = 8", "link_udp_min_seconds"), ("link_udp_max_seconds = 61", "link_udp_max_seconds")):
        config.write_text(f"[monitor]\n{text}\n")
        with pytest.raises(ConfigError, match=key):
            load_config(config)

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
    DOWNLOAD_OVER,
    ECHO_HEAD,
    IDLE_OVER,
    LOAD_PROBE_HEAD_BYTES,
    LOAD_SAMPLE,
    PROBE_HEAD,
    RECEIPT,
    UPLOAD_OVER,
    IdleRule,
    LoadRule,
    RtcStreams,
    StreamRecords,
    phase_runs,
)
from sessionready import quality, settle

ORIGIN_NS = 5_000_000_000  # the monitor's clock when the first probe arrives
PAGE_MS = 1000.0  # the page's clock when it sends the first probe
MAX_RECEIPTS = (172 - PROBE_HEAD.size) // RECEIPT.size  # 13 in a 172-byte probe


def probe(
    seq: int, sent_ms: float, phase: int, receipts: list[tuple[int, float]], length: int = 172, load: tuple[float, float, float] | None = None
) -> bytes:
    """A probe as rtc.js sends it: kind 1, or kind 3 with ``load`` = (phase start, sample time,
    cumulative bytes) before the receipts, as many receipts as fit."""
    if load is None:
        head = PROBE_HEAD.pack(1, phase, len(receipts), seq, sent_ms)
    else:
        receipts = receipts[-((length - LOAD_PROBE_HEAD_BYTES) // RECEIPT.size) :] if receipts else []
        head = PROBE_HEAD.pack(3, phase, len(receipts), seq, sent_ms) + LOAD_SAMPLE.pack(*load)
    body = head + b"".join(RECEIPT.pack(s, a) for s, a in receipts)
    return body + bytes(length - len(body))


class Page:
    """A page and a monitor joined by a path that loses the probes and echoes it is told to."""

    def __init__(self, records: StreamRecords, lost_up: set[int] = frozenset(), lost_down: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        self.records, self.lost_up, self.lost_down = records, lost_up, lost_down
        self.received: list[tuple[int, float]] = []  # the page's echoes, [seq, arrival_ms]
        self.flags: dict[int, int] = {}  # seq -> the echo's flags byte
        self.seq = 0

    def send(self, phase: int = 1, load: tuple[float, float, float] | None = None, delay_ms: float = 0.0) -> None:
        """One probe; ``load`` its load sample; ``delay_ms`` a queue on the way up (a loaded path)."""
        seq, t_ms = self.seq, self.seq * 20.0
        self.seq += 1
        message = probe(seq, PAGE_MS + t_ms, phase, self.received[-MAX_RECEIPTS:], load=load)
        if seq in self.lost_up:
            return
        recv_ns = ORIGIN_NS + round((t_ms + delay_ms) * 1e6) + 500_000
        echo = self.records.answer(message, recv_ns, lambda: recv_ns + 50_000)
        assert echo is not None and len(echo) == len(message)
        self.records.settle_phases(recv_ns + 60_000)
        if seq not in self.lost_down:
            self.flags[seq] = ECHO_HEAD.unpack_from(echo)[1]
            self.received.append((seq, PAGE_MS + t_ms + delay_ms + 1.05))

    def now_ms(self) -> float:
        """The page's clock when it sends its next probe."""
        return PAGE_MS + self.seq * 20.0

    def load_phase(self, phase: int, mbps, *, lag_ms: float = 0.0, delay_ms: float = 0.0, flag: int, limit_s: float = 10.0) -> tuple[float, int]:
        """Run a throughput phase: each probe carries the page's byte count so far (``mbps(t_s)``
        the rate at t_s into the phase; the series complete up to ``lag_ms`` before the probe, as
        an upload's is), until an echo carries ``flag``: (the page's seconds into the phase when
        it heard, the seq of that echo)."""
        start = self.now_ms()
        count, t_prev = 0.0, 0.0
        series = [(0.0, 0.0)]
        while self.now_ms() - start < limit_s * 1000:
            t_s = (self.now_ms() - start) / 1000
            count += mbps(t_s) * 1e6 / 8 * (t_s - t_prev)
            t_prev = t_s
            series.append((t_s, count))
            at_s = max(0.0, t_s - lag_ms / 1000)
            known = max(c for t, c in series if t <= at_s)
            self.send(phase, load=(start, start + at_s * 1000, known), delay_ms=delay_ms)
            told = [seq for seq, flags in self.flags.items() if flags & flag]
            if told:
                return (self.now_ms() - 20.0 - start) / 1000, told[0]
        raise AssertionError("the monitor never ended the phase")

    def run_until_told(self, limit: int = 1000) -> int:
        """Send until an echo says the idle phase is over: the seq of that echo."""
        while self.seq < limit:
            self.send()
            told = [seq for seq, flags in self.flags.items() if flags & IDLE_OVER]
            if told:
                return told[0]
        raise AssertionError("the monitor never ended the idle phase")


def adaptive(min_s: float = 2.0, max_s: float = 10.0, load: tuple[float, float] | None = None) -> StreamRecords:
    loads = {}
    if load is not None:
        limits = settle.PhaseLimits(*load)
        loads = {"download": LoadRule("down", limits, 1.0), "upload": LoadRule("up", limits, 1.0)}
    return StreamRecords("a" * 32, "link1", idle=IdleRule(settle.PhaseLimits(min_s, max_s)), loads=loads)


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

        streams = RtcStreams(
            open_peer, max_peers=4, max_seconds=60, ramp_s=1.0, idle_limits=settle.PhaseLimits(2.0, 10.0),
            load_limits=settle.PhaseLimits(2.0, 6.0), thresholds=quality.Thresholds(),
        )  # fmt: skip
        rtc_id, _ = await streams.start("link1", "offer")
        records = streams.records(rtc_id)
        assert records is not None and records.idle is not None and records.idle.limits == settle.PhaseLimits(2.0, 10.0)
        assert {name: (rule.direction, rule.limits, rule.ramp_s) for name, rule in records.loads.items()} == {
            "download": ("down", settle.PhaseLimits(2.0, 6.0), 1.0), "upload": ("up", settle.PhaseLimits(2.0, 6.0), 1.0),
        }  # fmt: skip
        assert streams.phases_for(rtc_id, "link2", {"idle": (0.0, 1.0)}) is None
        assert streams.phases_for(rtc_id, "link1", {"idle": (0.0, 1000.0)})[0].stopped == "fixed_length"
        fixed = RtcStreams(open_peer, max_peers=4, max_seconds=60, ramp_s=1.0)
        other, _ = await fixed.start("link1", "offer")
        assert fixed.records(other).idle is None and fixed.records(other).loads == {}
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


# --- the throughput phases ----------------------------------------------------------------------


def test_clean_throughput_phases_stop_at_their_minimum_and_say_so() -> None:
    """A clean path, 100 Mbit/s down and 40 up (every 0.25 s window far above twice the best
    tier's need: 9 and 11.4 Mbit/s), no queue: both phases are settled at their 2 s minimum. The
    upload's series is complete only up to 0.3 s before each probe (its requests are counted
    when answered), so it stops once that horizon is 1 s past the ramp: at 2.3 s."""
    records = adaptive(load=(2.0, 6.0))
    page = Page(records)
    page.run_until_told()
    download_starts = page.now_ms()
    heard_down, _ = page.load_phase(2, lambda t: 100.0, flag=DOWNLOAD_OVER)
    down = records.loads["download"].decision
    assert down is not None and down.stopped == "settled" and down.unsettled == (), down
    # The rule is asked every 0.2 s from the phase's first probe: it stops within 0.2 s of 2 s,
    # and the page hears it on the next echo.
    assert 2.0 <= down.seconds <= 2.2 + 1e-9 and down.seconds <= heard_down <= down.seconds + 0.04, (down, heard_down)
    upload_starts = page.now_ms()
    heard_up, _ = page.load_phase(3, lambda t: 40.0, lag_ms=300.0, flag=UPLOAD_OVER)
    up = records.loads["upload"].decision
    assert up is not None and up.stopped == "settled" and 2.3 <= up.seconds <= 2.5 + 1e-9 and heard_up <= up.seconds + 0.04, (up, heard_up)
    # Every echo from then on carries all three words.
    page.send(3)
    assert page.flags[page.seq - 1] == IDLE_OVER | DOWNLOAD_OVER | UPLOAD_OVER
    spans = {"idle": (PAGE_MS, download_starts), "download": (download_starts, upload_starts), "upload": (upload_starts, page.now_ms())}
    runs = phase_runs(spans, records.idle, records.loads)
    assert [(r.name, r.stopped, r.min_s, r.max_s, r.unsettled) for r in runs] == [
        ("idle", "settled", 2.0, 10.0, ()), ("download", "settled", 2.0, 6.0, ()), ("upload", "settled", 2.0, 6.0, ()),
    ]  # fmt: skip
    # A direction the page measured no rate for failed, whatever ended its phase (as in the CLI).
    runs = phase_runs(spans, records.idle, records.loads, failed=["upload"])
    assert [(r.name, r.stopped, r.min_s, r.max_s) for r in runs][1:] == [("download", "settled", 2.0, 6.0), ("upload", "failed", 2.0, 6.0)]


def test_delay_under_load_near_a_line_and_an_uneven_upload_run_to_the_maximum() -> None:
    """Download: a queue that adds 60 ms on the way up after the ramp, exactly the warning line
    (the model warns strictly above 60): the interval of the increase straddles it, unsettled
    until the 4 s maximum. Upload: 2 Mbit/s on average, but it alternates every 0.5 s between
    1.4 and 2.6 Mbit/s, across the 1.8 Mbit/s line (720p's 1.2 x 1.5 headroom): unsettled."""
    records = adaptive(load=(2.0, 4.0))
    page = Page(records)
    page.run_until_told()
    start = page.now_ms()
    seq_jitter = iter(range(10**6))

    def queue_ms() -> float:
        # 60 ms +/- 1 ms, so the loaded median's interval has width and contains 60.
        return 60.0 + (1.0 if next(seq_jitter) % 2 else -1.0)

    # The download with its queue: a probe sent after the ramp waits queue_ms on the way up.
    count = 0.0
    while records.loads["download"].decision is None:
        t_s = (page.now_ms() - start) / 1000
        count = 12.5e6 * t_s
        page.send(2, load=(start, start + t_s * 1000, count), delay_ms=queue_ms() if t_s >= 1.0 else 0.0)
        assert t_s < 5.0
    down = records.loads["download"].decision
    figures = {j.figure for j in down.unsettled}
    assert down.stopped == "max_length" and 4.0 <= down.seconds <= 4.2 + 1e-9 and figures == {"loaded_latency_down"}, down
    page.load_phase(3, lambda t: 1.4 if int(t / 0.5) % 2 else 2.6, flag=UPLOAD_OVER)
    up = records.loads["upload"].decision
    unsettled = {j.figure: j for j in up.unsettled}
    assert up.stopped == "max_length" and set(unsettled) == {"throughput_up"}, up
    assert unsettled["throughput_up"].low < 1.8 < unsettled["throughput_up"].high
    (reason,) = settle.borderline_reasons([(j.figure, j.low, j.high) for j in (*down.unsettled, *up.unsettled)])
    assert "delay while downloading" in reason.message and "upload speed" in reason.message, reason.message


def test_a_link_far_below_every_need_stops_at_the_minimum() -> None:
    """0.3 Mbit/s down: every window at most half the smallest line (0.9 Mbit/s, 360p's need x
    1.5): the worst a throughput can be is certain at the minimum, whatever the spread."""
    records = adaptive(load=(2.0, 6.0))
    page = Page(records)
    page.run_until_told()
    page.load_phase(2, lambda t: 0.2 if int(t / 0.25) % 2 else 0.4, flag=DOWNLOAD_OVER)
    down = records.loads["download"].decision
    assert down.stopped == "settled" and 2.0 <= down.seconds <= 2.2 + 1e-9, down
    assert down.floor == "critical"  # carried into the upload, as the CLI carries it


def test_load_samples_that_cannot_be_true_are_ignored_and_the_probe_still_echoed() -> None:
    records = adaptive(load=(2.0, 6.0))
    rule = records.loads["download"]
    clock = iter(range(ORIGIN_NS, ORIGIN_NS + 10**12, 20_000_000))

    def send(seq: int, sent_ms: float, load: tuple[float, float, float], phase: int = 2, length: int = 172) -> bytes | None:
        now = next(clock)
        return records.answer(probe(seq, sent_ms, phase, [], load=load)[:length], now, lambda: now + 1)

    start = 5000.0
    assert send(0, start + 20, (start, start + 20, 1000.0)) is not None
    assert rule.samples == [(0.0, 0.0), (0.02, 1000.0)]
    bad = [
        (start + 40, (start, start + 40, float("nan"))),  # not a number
        (start + 60, (start, start + 80, 3000.0)),  # a count from after the probe that carries it
        (start + 80, (start + 1, start + 80, 4000.0)),  # another start for the same phase
        (start + 100, (start, start + 100, 500.0)),  # a cumulative count that falls
        (start + 120, (start, start + 120, 2e13)),  # more than any link moves
        (start + 140, (-1.0, start + 140, 5000.0)),  # a start before the page's clock began
        (start + 700_000, (start, start + 700_000, 5000.0)),  # beyond the longest phase
    ]
    for seq, (sent_ms, load) in enumerate(bad, start=1):
        assert send(seq, sent_ms, load) is not None  # echoed all the same
    assert rule.samples == [(0.0, 0.0), (0.02, 1000.0)] and rule.rejected == len(bad)
    # A reordered probe's older sample is no error, just nothing new; a later true one is kept.
    assert send(20, start + 30, (start, start + 10, 500.0)) is not None and rule.rejected == len(bad)
    assert send(21, start + 200, (start, start + 200, 9000.0)) is not None
    assert rule.samples[-1] == (0.2, 9000.0)
    # A sample on a probe of another phase, or a kind 3 message too short for its sample: the
    # sample goes nowhere; the short message is dropped like any malformed probe.
    assert send(22, start + 220, (start, start + 220, 9500.0), phase=1) is not None and rule.samples[-1] == (0.2, 9000.0)
    ignored = records.ignored
    assert send(23, start + 240, (start, start + 240, 9600.0), length=38) is None and records.ignored == ignored + 1


def test_a_page_that_leaves_a_load_phase_first_ran_it_fixed() -> None:
    records = adaptive(load=(2.0, 6.0))
    page = Page(records)
    page.run_until_told()
    start = page.now_ms()
    for i in range(40):  # 0.8 s of download, then the page moves on by itself
        page.send(2, load=(start, start + i * 20.0, 1e5 * i))
    for _ in range(5):
        page.send(3)
    assert records.loads["download"].decision is None and records.loads["download"].page_moved_on
    assert not any(flags & DOWNLOAD_OVER for flags in page.flags.values())
    (_, run, _) = phase_runs({"idle": (0.0, 1.0), "download": (start, start + 800.0), "upload": (start + 800.0, start + 900.0)}, records.idle, records.loads)
    assert (run.name, run.stopped, run.min_s) == ("download", "fixed_length", None)


def test_an_upload_whose_count_stands_still_still_ends_at_its_maximum() -> None:
    """A request so slow that nothing is answered within the phase: the page's count stays at 0
    up to its start, no point is new, and the phase still ends at its longest, unsettled."""
    records = adaptive(load=(2.0, 4.0))
    page = Page(records)
    page.run_until_told()
    heard, _ = page.load_phase(3, lambda t: 5.0, lag_ms=60_000.0, flag=UPLOAD_OVER)
    up = records.loads["upload"].decision
    assert up.stopped == "max_length" and 4.0 <= up.seconds <= 4.2 + 1e-9 and heard <= up.seconds + 0.04, (up, heard)
    assert "throughput_up" in {j.figure for j in up.unsettled} and records.loads["upload"].samples == [(0.0, 0.0)]

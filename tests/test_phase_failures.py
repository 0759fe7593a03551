"""A check phase that does not finish is kept in the report as a code (issue 13): before, a timed-out
or crashed machine or room phase left ``machine``/``room`` null, which reads the same as a check
run with --no-machine or --no-audio. Now the report says probe_timeout or probe_failed, the
monitor accepts it, and the quality model does not blame the person's machine or room for it."""

from __future__ import annotations

import asyncio
import copy

from agents.check import _machine_failed, _room_unavailable
from agents.runner import QuietProgress, run_phase
from sessionready import schema
from sessionready.facts import assess_check
from sessionready.quality import Thresholds
from sessionready.typed import decode, encode
from tests.conftest import CHECK


async def _hangs() -> None:
    await asyncio.Event().wait()


async def _breaks() -> None:
    raise KeyError("a probe bug")


async def _works() -> int:
    return 7


def test_a_phase_that_does_not_finish_says_how_as_a_code() -> None:
    async def phases():  # noqa: ANN202
        return [await run_phase(name, name, work, expected_s=0.01, timeout_s=0.05, progress=QuietProgress()) for name, work in (("hangs", _hangs()), ("breaks", _breaks()), ("works", _works()))]

    hung, broke, worked = asyncio.run(phases())
    assert (hung.failure, hung.value) == ("probe_timeout", None) and "did not finish within 0.05 s" in (hung.error or "")
    assert (broke.failure, broke.value) == ("probe_failed", None) and "KeyError" in (broke.error or "")
    assert (worked.failure, worked.error, worked.value) == (None, None, 7)


def test_failed_phases_reach_the_monitor_as_codes_and_are_not_judged() -> None:
    report = copy.deepcopy(CHECK)
    report["machine"] = encode(_machine_failed("probe_timeout"))
    report["room"] = encode(_room_unavailable("probe_failed"))
    stored = decode(schema.CheckReport, report)  # what the monitor's strict decoding accepts
    assert stored.machine is not None and stored.machine.error == "probe_timeout" and stored.machine.cpu_pct is None
    assert stored.room is not None and (stored.room.available, stored.room.problem) == (False, "probe_failed")
    # The model finds nothing about this machine or room: the check broke, not the computer.
    reasons = {r.code for r in assess_check(stored.network, stored.machine, stored.room, Thresholds()).reasons}
    clean = {r.code for r in assess_check(stored.network, None, None, Thresholds()).reasons}
    assert reasons == clean
    # A machine that really has no microphone is still judged: the codes do not hide that.
    no_device = decode(schema.Room, {**encode(_room_unavailable("probe_failed")), "problem": "no_device"})
    assert "no_microphone" in {r.code for r in assess_check(stored.network, None, no_device, Thresholds()).reasons}

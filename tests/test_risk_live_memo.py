"""The live loop keeps the states it stored (monitor/risk/service.py) and skips decoding a
session's stored state while it is still the JSON it wrote; a state someone else stored (another
monitor that held the lease, a restart) is decoded and used. Real SQLite store, real tracker."""

from __future__ import annotations

import dataclasses
import json
import random
import time
from pathlib import Path

from benchmarks.scale_agents import live_sample
from monitor.risk.live import LiveState
from monitor.risk.service import RiskService
from monitor.store.core import open_store
from monitor.store.reports import ReportBatch
from monitor.store.risk import LiveRow
from sessionready.schema import ReportEnvelope, SpoolStatus
from sessionready.typed import decode, encode


def test_a_state_stored_by_another_process_is_decoded_not_the_remembered_one(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    try:
        rng = random.Random(1)
        now = time.time()
        therapist, _ = store.create_token("therapist", "t-1")
        client, _ = store.create_token("client", "c-1")
        store.create_session("s-1", therapist.participant_id, client.participant_id, int(now) - 60, 3600, assign=True)

        def report_round(seq: int) -> None:
            for agent in (therapist, client):
                envelope = ReportEnvelope(report_id=f"{rng.getrandbits(128):032x}", seq=seq, kind="live", sample=live_sample("s-1", time.time(), rng))
                store.add_report_batches([ReportBatch(agent, [envelope], SpoolStatus(pending=1, dropped_background=0, rejected=0), time.time())])

        def stored() -> tuple[str, LiveState]:
            (session,) = store.live_sessions()
            assert session.live_state is not None
            return session.live_state, decode(LiveState, json.loads(session.live_state))

        service = RiskService(store)
        report_round(1)
        service.track_live()  # both ends reported: live, and its first state stored
        report_round(2)
        assert service.track_live() == 1
        _, state = stored()
        assert state.client.last_received_at_unix is not None
        # Another monitor stores a state of its own: tracking since an hour earlier.
        theirs = dataclasses.replace(state, started_at_unix=state.started_at_unix - 3600.0)
        store.save_lives([LiveRow("s-1", json.dumps(encode(theirs)), "ready", None, None)], time.time())
        report_round(3)
        assert service.track_live() == 1
        _, after = stored()
        assert after.started_at_unix == theirs.started_at_unix, "the pass went on from the remembered state, not the stored one"
        report_round(4)
        assert service.track_live() == 1  # and from its own again: the same start
        assert stored()[1].started_at_unix == theirs.started_at_unix
    finally:
        store.close()

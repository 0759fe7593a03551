"""``sessionready agent``: the always-on daemon on a client's or therapist's machine.

It asks the monitor for its participant's sessions, lets the planner (``schedule.py``) say
what is due, and runs it: light background samples, a full check before each session (with
a desktop notification when it is not ``ready``), and a live report every couple of seconds
while a session is in progress. Every report goes to the on-disk spool first and from there,
through the forwarder, to the monitor (docs/agent.md, docs/reports.md).

SIGTERM/SIGINT: stop, deliver what is pending for a few seconds, close the spool, exit 0.
SIGHUP: read the config again; a bad file is logged and the running config kept.

The command (arguments, config loading, signals, exit codes) is ``agents/daemon_cli.py``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from sessionready.terms import EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    import asyncio

    from agents.client import Connection, MonitorClient
    from agents.config import AgentConfig
    from agents.daemon.forward import Forwarder
    from agents.daemon.notify import Notifier
    from agents.daemon.samplers import Sampler
    from agents.daemon.schedule import Action, KnownSession
    from agents.daemon.spool import Spool

FLUSH_TIMEOUT_S = 5.0  # on SIGTERM: how long to keep delivering what is pending
ERROR_PAUSE_S = 5.0  # after an activity failed unexpectedly, before trying again
LOGGER = "sessionready.agent"


# --- Time ---------------------------------------------------------------------------------


class Clock(Protocol):
    """Wall time (unix seconds): sessions are planned in it. Tests pass their own."""

    def time(self) -> float: ...

    async def sleep_until(self, unix: float) -> None: ...


class SystemClock:
    # Sleeps are cut into naps: a laptop that was suspended, or a clock that was set, is
    # noticed within one nap instead of after the whole sleep.
    MAX_NAP_S = 30.0

    def time(self) -> float:
        return time.time()

    async def sleep_until(self, unix: float) -> None:
        import asyncio

        while (left := unix - time.time()) > 0:
            await asyncio.sleep(min(left, self.MAX_NAP_S))


# --- The daemon ---------------------------------------------------------------------------


class Daemon:
    """Runs until ``request_stop``. One MonitorClient at a time; a new one when SIGHUP brings
    a new URL, token or CA file. The spool outlives clients."""

    def __init__(
        self,
        config: AgentConfig,
        connection: Connection,
        spool: Spool,
        *,
        reload: Callable[[], tuple[AgentConfig, Connection]],
        notifier: Notifier,
        clock: Clock | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        import asyncio

        from agents.daemon.schedule import History
        from agents.daemon.sessions import SessionBook

        self.config = config
        self.connection = connection
        self.spool = spool
        self._reload_config = reload
        self._notifier = notifier
        self._clock = clock or SystemClock()
        self._log = logger or logging.getLogger(LOGGER)
        self.history = History()
        self.book: SessionBook = SessionBook(self._log)
        self.mode = ""
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._wake = asyncio.Event()  # news for the planner: sessions or settings changed
        self._settings_changed = asyncio.Event()  # for the poller and the live loop
        self._sampler: tuple[bool, Sampler] | None = None

    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        self._reload.set()

    async def run(self) -> int:
        """Exit status: 0 after a stop request, 1 if a part of the daemon failed unexpectedly."""
        self._log.info("agent started", extra={"fields": {"monitor": list(self.connection.urls), "spool": str(self.config.spool_file), **self._settings()}})
        while True:
            outcome = await self._connected()
            if outcome != "reconnect":
                return EXIT_OK if outcome == "stop" else EXIT_FAILED

    def _settings(self) -> dict[str, object]:
        agent = self.config.agent
        return {
            "background_interval_s": agent.background_interval_s,
            "machine_interval_s": agent.machine_interval_s,
            "pre_session_lead_minutes": agent.pre_session_lead_minutes,
            "sessions_poll_s": agent.sessions_poll_s,
            "live_interval_s": agent.live_interval_s,
            "microphone": self.config.room.microphone,
            "notify": agent.notify,
        }

    async def _connected(self) -> str:
        """One client's lifetime: "stop", "reconnect" or "failed"."""
        import asyncio

        from agents.client import MonitorClient
        from agents.daemon.forward import Forwarder

        async with MonitorClient(self.connection.base_urls(), self.connection.token, ca_file=self.connection.ca_file) as client:
            forwarder = Forwarder(self.spool, client)
            self._sampler = None
            delivery = asyncio.create_task(forwarder.run(), name="forwarder")
            workers = [
                asyncio.create_task(self._poll(client), name="sessions"),
                asyncio.create_task(self._activities(client, forwarder), name="activities"),
            ]
            outcome = await self._control(workers + [delivery])
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            delivery.cancel()
            await asyncio.gather(delivery, return_exceptions=True)
            if outcome == "stop":
                delivered = await forwarder.flush(FLUSH_TIMEOUT_S)
                stats = self.spool.stats()
                self._log.info(
                    "agent stopped" if delivered else "agent stopped; undelivered reports stay in the spool",
                    extra={"fields": {"pending": stats.pending, "dropped_background": stats.dropped_background}},
                )
        return outcome

    async def _hello(self, client: MonitorClient) -> None:
        from agents.client import MonitorError

        try:
            me = await client.whoami()
        except MonitorError as error:
            # Not fatal: reports wait in the spool until the monitor is back (or the token is fixed).
            self._log.warning("monitor not usable now: %s", error.message, extra={"fields": {"status": error.status}})
            return
        self._log.info("connected to the monitor", extra={"fields": {k: me.get(k) for k in ("agent_id", "role", "participant_id")}})

    async def _control(self, tasks: list[asyncio.Task]) -> str:
        """Wait for a stop request, a reload that needs a new client, or a failed task."""
        import asyncio

        while True:
            stop = asyncio.create_task(self._stop.wait())
            reload = asyncio.create_task(self._reload.wait())
            done, _ = await asyncio.wait([stop, reload, *tasks], return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            reload.cancel()
            for task in tasks:
                if task in done:
                    error = task.exception() if not task.cancelled() else None
                    self._log.error(
                        "the agent stopped on an unexpected error in %s (%s)", task.get_name(), error.__class__.__name__ if error else "cancelled",
                        exc_info=error,
                    )
                    return "failed"
            if self._stop.is_set():
                self._log.info("stopping")
                return "stop"
            if self._reload.is_set():
                self._reload.clear()
                if self._apply_reload():
                    return "reconnect"

    def _apply_reload(self) -> bool:
        """Read the config again; True when the monitor connection changed."""
        from agents.client import UsageError
        from sessionready.config import ConfigError

        try:
            config, connection = self._reload_config()
        except (ConfigError, UsageError, ValueError) as error:
            self._log.error("config reload failed, keeping the running config: %s", error)
            return False
        old = self._settings()
        kept = []
        if config.spool_file != self.config.spool_file or config.agent.spool_max_mb != self.config.agent.spool_max_mb:
            kept.append("spool")  # the spool stays open: its file and size change at the next start
        self.config = config
        changed = sorted(key for key, value in self._settings().items() if old[key] != value)
        reconnect = connection != self.connection
        self.connection = connection
        self._log.info(
            "config reloaded",
            extra={"fields": {"changed": changed + (["monitor connection"] if reconnect else []), "next_start": kept, **self._settings()}},
        )
        self._wake.set()
        self._settings_changed.set()
        return reconnect

    # --- sessions --------------------------------------------------------------------------

    async def _poll(self, client: MonitorClient) -> None:
        from agents.daemon.sessions import horizon_hours

        await self._hello(client)  # here, not before: a slow monitor must not delay a SIGTERM
        while True:
            agent = self.config.agent
            if await self.book.refresh(client, horizon_hours(agent.pre_session_lead_minutes * 60, agent.sessions_poll_s)):
                self._wake.set()
            self._settings_changed.clear()
            await self._nap(self._clock.time() + self.config.agent.sessions_poll_s, self._settings_changed)

    async def _nap(self, until: float | None, event: asyncio.Event) -> None:
        """Sleep until ``until`` (None: indefinitely), or until ``event`` is set."""
        import asyncio

        waiter = asyncio.create_task(event.wait())
        sleeper = asyncio.create_task(self._clock.sleep_until(until)) if until is not None else None
        try:
            await asyncio.wait([t for t in (waiter, sleeper) if t is not None], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            if sleeper is not None:
                sleeper.cancel()

    # --- activities ------------------------------------------------------------------------

    def _set_mode(self, mode: str, session_id: str | None = None) -> None:
        label = f"{mode}:{session_id}" if session_id else mode
        if label != self.mode:
            self.mode = label
            self._log.info("mode: %s", mode, extra={"fields": {"mode": mode, "session_id": session_id}})

    async def _activities(self, client: MonitorClient, forwarder: Forwarder) -> None:
        from agents.daemon import schedule

        while True:
            self._wake.clear()
            settings = schedule.Settings.from_config(self.config.agent)
            now = self._clock.time()
            plan = schedule.plan(now, self.book.sessions, self.history, settings)
            try:
                if plan.live is not None:
                    self._set_mode("live", plan.live.session_id)
                    await self._live(client, forwarder, plan.live)
                    continue
                self._set_mode("background")
                for action in plan.due:
                    await self._run_action(client, forwarder, action)
            except Exception as error:  # noqa: BLE001 - one failed activity must not stop the agent
                self._log.error("activity failed unexpectedly (%s); retrying in %g s", error.__class__.__name__, ERROR_PAUSE_S, exc_info=error)
                await self._clock.sleep_until(self._clock.time() + ERROR_PAUSE_S)
                continue
            if not plan.due:
                await self._nap(plan.next_unix, self._wake)

    def _sampler_for(self, client: MonitorClient) -> Sampler:
        from agents.daemon.samplers import Sampler

        room_allowed = self.config.room.microphone
        if self._sampler is None or self._sampler[0] != room_allowed:
            self._sampler = (room_allowed, Sampler(client, room_allowed))
        return self._sampler[1]

    async def _run_action(self, client: MonitorClient, forwarder: Forwarder, action: Action) -> None:
        started = self._clock.time()
        if action.kind == "check":
            await self._check(client, forwarder, action.session_id)
            self.history = self.history.after(action, started)
            return
        self.history = self.history.after(action, started)  # cadence counts from each start
        sampler = self._sampler_for(client)
        if action.kind == "network":
            sample = await sampler.network_sample("background", None, self.config.agent.burst_seconds)
        else:
            sample = await sampler.machine_sample("background", None)
        spooled = self.spool.add_sample("background", sample)
        forwarder.wake()
        fields: dict[str, object] = {"seq": spooled.seq, "duration_s": round(self._clock.time() - started, 3)}
        if sample.network is not None:
            fields.update(rtt_p50_ms=sample.network.rtt_p50_ms, loss_up=sample.network.loss_up, problem=sample.network.problem)
        self._log.info("%s sample spooled", action.kind, extra={"fields": fields})

    async def _check(self, client: MonitorClient, forwarder: Forwarder, session_id: str | None) -> None:
        import asyncio

        from agents.check import CheckOptions, run_check
        from agents.client import MonitorError
        from agents.runner import QuietProgress

        started = self._clock.time()
        self._log.info("pre-session check started", extra={"fields": {"session_id": session_id}})
        try:
            run = await run_check(client, CheckOptions.from_config(self.config, session_id=session_id), QuietProgress())
        except MonitorError as error:
            # Once per session: a check that cannot run now is not retried in a loop.
            self._log.warning("pre-session check could not run: %s", error.message, extra={"fields": {"session_id": session_id}})
            return
        report = run.report
        spooled = self.spool.add_check(report)
        forwarder.wake()
        self._log.info(
            "pre-session check spooled",
            extra={"fields": {"session_id": session_id, "verdict": report.verdict, "seq": spooled.seq, "duration_s": round(self._clock.time() - started, 3)}},
        )
        if report.verdict != "ready":
            if self.config.agent.notify:
                await asyncio.to_thread(self._notifier.notify, report, session_id)
            else:
                self._log.info("not notifying: [agent] notify is off", extra={"fields": {"session_id": session_id}})

    async def _live(self, client: MonitorClient, forwarder: Forwarder, session: KnownSession) -> None:
        """Stream live reports for ``session`` until it is no longer the live one, or the live
        settings change."""
        from agents.check import room_settings
        from agents.daemon.samplers import LiveSampler
        from agents.daemon.schedule import live_session

        interval_s, room_allowed = self.config.agent.live_interval_s, self.config.room.microphone
        count = 0
        try:
            settings = room_settings(self.config.room) if room_allowed else None
            async with LiveSampler(client, room_allowed, interval_s=interval_s, room_settings=settings) as live:
                while True:
                    sample = await live.next_sample(session.session_id)
                    spooled = self.spool.add_sample("live", sample)
                    forwarder.wake()
                    count += 1
                    self._log.debug("live sample spooled", extra={"fields": {"session_id": session.session_id, "seq": spooled.seq}})
                    current = live_session(self._clock.time(), self.book.sessions)
                    if current is None or current.session_id != session.session_id:
                        return
                    if (self.config.agent.live_interval_s, self.config.room.microphone) != (interval_s, room_allowed):
                        return
        finally:
            self._log.info("live reports for the session: %d", count, extra={"fields": {"session_id": session.session_id, "reports": count}})


# --- Logging ------------------------------------------------------------------------------


class AgentFormatter(logging.Formatter):
    """JSON lines like the monitor's (ts, level, logger, message, fields), or the same as
    plain text for a person at a terminal. Never given a token: nothing logs one."""

    def __init__(self, as_json: bool) -> None:
        super().__init__()
        self._json = as_json

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        fields = getattr(record, "fields", None)
        fields = fields if isinstance(fields, dict) else {}
        if self._json:
            entry: dict[str, object] = {"ts": ts, "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage(), **fields}
            if record.exc_info:
                entry["exception"] = self.formatException(record.exc_info)
            return json.dumps(entry, separators=(",", ":"), default=str)
        extra = " ".join(f"{key}={json.dumps(value, default=str)}" for key, value in fields.items() if value is not None)
        line = f"{ts} {record.levelname.lower():7} {record.getMessage()}" + (f"  {extra}" if extra else "")
        return line + ("\n" + self.formatException(record.exc_info) if record.exc_info else "")


def configure_logging(level: str, log_format: str) -> logging.Logger:
    as_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(AgentFormatter(as_json))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)  # libraries: warnings only
    logger = logging.getLogger(LOGGER)
    logger.setLevel(level.upper())
    return logger

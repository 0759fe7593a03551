"""Alerts: deduplicate risk transitions, queue webhook deliveries, deliver them with retries.

``Alerter.submit`` is what the risk engine calls: it only writes to the store (dedup check,
alert row, one outbox row per matching webhook) and returns at once, so a dead or slow
webhook can never hold up ingest. ``Alerter.run`` is the delivery worker, a separate task:
at most one request in flight per webhook (each channel gets its alerts in order), at most
``max_concurrent`` in all, each with its own timeout, exponential backoff with jitter between
attempts. Delivery is at least once: a crash between a webhook's answer and the store update
sends that alert again after the lease; generic receivers can deduplicate by
``X-Sessionready-Alert-Id``.

Payloads carry pseudonymous ids, closed codes and the reasons we generated: never a name,
never free text from a person. Webhook URLs and secrets never reach a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random as random_module
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import aiohttp

from monitor.alerts.config import KINDS, AlertKind, AlertsConfig, WebhookConfig
from monitor.logs import log_failed_pass
from monitor.metrics import AlertMetrics
from monitor.store.alerts import AlertRecord, AttemptOutcome, PendingDelivery
from monitor.store.protocols import AlertStore
from sessionready.backoff import half_jitter_s
from sessionready.terms import ENDS, ID_PATTERN
from sessionready.typed import rfc3339

log = logging.getLogger("sessionready.monitor.alerts")

CAUSE_PATTERN = r"[a-z][a-z0-9_]{0,63}"
USER_AGENT = "sessionready-monitor"
SIGNATURE_HEADER = "X-Sessionready-Signature"
TIMESTAMP_HEADER = "X-Sessionready-Timestamp"
ALERT_ID_HEADER = "X-Sessionready-Alert-Id"
# Beyond the longest request timeout, so a lease never expires while its request is running.
LEASE_MARGIN_S = 30.0
# The worker looks at the outbox at least this often, in case another monitor queued work.
POLL_S = 5.0
SLACK_SECTION_CHARS = 3000  # Slack's limit for a section's text
SLACK_HEADER_CHARS = 150


@dataclass(frozen=True)
class AlertReason:
    """One reason, as the risk engine words it: a closed code, the end, our plain words, a fix."""

    code: str
    end: Literal["client", "therapist", "session"]
    message: str
    action: str


@dataclass(frozen=True)
class AlertEvent:
    """A change worth telling someone about. Ids are pseudonymous; cause is a closed code."""

    session_id: str
    therapist_id: str
    client_id: str
    kind: AlertKind
    cause: str  # e.g. "client_loss_up", "therapist_cpu", "client_no_check"
    end: Literal["client", "therapist", "session"]
    state: str  # the session state after the change
    reasons: tuple[AlertReason, ...]
    at: float  # unix seconds: when the change happened
    starts_at: float  # unix seconds: the session's start

    def __post_init__(self) -> None:
        # A programming error upstream must not put a name or free text into a webhook.
        for name in ("session_id", "therapist_id", "client_id"):
            if not re.fullmatch(ID_PATTERN, getattr(self, name)):
                raise ValueError(f"{name} is not a pseudonymous id")
        if self.kind not in KINDS:
            raise ValueError(f"unknown alert kind {self.kind!r}")
        if not re.fullmatch(CAUSE_PATTERN, self.cause) or not re.fullmatch(CAUSE_PATTERN, self.state):
            raise ValueError("cause and state are closed codes (lowercase letters, digits, '_')")
        if self.end not in ENDS or any(reason.end not in ENDS for reason in self.reasons):
            raise ValueError("end must be client, therapist or session")


# --- Payloads ---------------------------------------------------------------------------------

HEADLINES = {
    "session_at_risk": "Session {session} is at risk",
    "session_not_ready": "Session {session} is not ready",
    "live_degraded": "Live session {session} has degraded",
    "live_recovered": "Live session {session} has recovered",
    "agent_offline": "The {end}'s agent for session {session} is offline",
    "session_summary": "How session {session} went",
}


def _human_time(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).strftime("%Y-%m-%d %H:%M UTC")


def headline(event: AlertEvent) -> str:
    return HEADLINES[event.kind].format(session=event.session_id, end=event.end)


def generic_payload(alert_id: str, event: AlertEvent) -> dict[str, Any]:
    """Our own JSON: every field of the event, times as RFC 3339 (UTC) and unix seconds."""
    return {
        "type": "sessionready.alert",
        "version": 1,
        "alert_id": alert_id,
        "kind": event.kind,
        "cause": event.cause,
        "end": event.end,
        "state": event.state,
        "session_id": event.session_id,
        "therapist_id": event.therapist_id,
        "client_id": event.client_id,
        "at": rfc3339(event.at),
        "at_unix": event.at,
        "starts_at": rfc3339(event.starts_at),
        "starts_at_unix": event.starts_at,
        "summary": headline(event),
        "reasons": [{"code": r.code, "end": r.end, "message": r.message, "action": r.action} for r in event.reasons],
    }


def _slack_escape(text: str) -> str:
    # Slack reads &, < and > as markup (<!channel> would ping everyone).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_payload(alert_id: str, event: AlertEvent) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` (the notification fallback) and Block Kit blocks."""
    title = headline(event)
    lines = [f"• *{_slack_escape(r.end)}*: {_slack_escape(r.message)}\n    _What to do:_ {_slack_escape(r.action)}" for r in event.reasons]
    reasons_text = _clip("\n".join(lines) or "_No further detail._", SLACK_SECTION_CHARS)
    fallback = title + (f": {event.reasons[0].message}" if event.reasons else "")
    fields = [
        ("Session", event.session_id),
        ("Starts", _human_time(event.starts_at)),
        ("Therapist", event.therapist_id),
        ("Client", event.client_id),
        ("End", event.end),
        ("State", event.state),
    ]
    return {
        "text": _slack_escape(fallback),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": _clip(title, SLACK_HEADER_CHARS)}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{_slack_escape(value)}"} for name, value in fields]},
            {"type": "section", "text": {"type": "mrkdwn", "text": reasons_text}},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"sessionready · {event.kind} · {event.cause} · {_human_time(event.at)} · alert {alert_id}"}],
            },
        ],
    }


def teams_payload(alert_id: str, event: AlertEvent) -> dict[str, Any]:
    """A Teams message with one Adaptive Card attachment: the shape both the classic incoming
    webhooks and the Workflows "post to a channel when a webhook request is received" accept."""
    colour = "Good" if event.kind == "live_recovered" or event.state == "no_trouble" else "Attention"
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": headline(event), "weight": "Bolder", "size": "Medium", "color": colour, "wrap": True},
        {
            "type": "FactSet",
            "facts": [
                {"title": "Session", "value": event.session_id},
                {"title": "Starts", "value": _human_time(event.starts_at)},
                {"title": "Therapist", "value": event.therapist_id},
                {"title": "Client", "value": event.client_id},
                {"title": "End", "value": event.end},
                {"title": "State", "value": event.state},
            ],
        },
    ]
    for reason in event.reasons:
        body.append({"type": "TextBlock", "text": f"**{reason.end}**: {reason.message}", "wrap": True, "spacing": "Medium"})
        body.append({"type": "TextBlock", "text": f"What to do: {reason.action}", "wrap": True, "isSubtle": True, "spacing": "None"})
    body.append(
        {"type": "TextBlock", "text": f"sessionready · {event.kind} · {event.cause} · alert {alert_id}", "size": "Small", "isSubtle": True, "wrap": True}
    )
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": body,
                    "msteams": {"width": "Full"},
                },
            }
        ],
    }


BUILDERS: dict[str, Callable[[str, AlertEvent], dict[str, Any]]] = {
    "generic": generic_payload,
    "slack": slack_payload,
    "teams": teams_payload,
}


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, timestamp + "." + body); the timestamp stops replays."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


# --- Delivery ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptResult:
    outcome: AttemptOutcome
    status_code: int | None
    error: str | None  # closed code
    retry_after_s: float | None


def classify(status: int, retry_after: str | None) -> AttemptResult:
    """What an HTTP answer means for the delivery. 408/425/429/5xx are worth another try; other
    4xx (a bad URL, a revoked webhook) and redirects are not."""
    if 200 <= status < 300:
        return AttemptResult("sent", status, None, None)
    wait = float(retry_after) if retry_after and retry_after.isdigit() else None
    if status in (408, 425, 429) or status >= 500:
        return AttemptResult("retry", status, "http_5xx" if status >= 500 else f"http_{status}", wait)
    return AttemptResult("failed", status, "redirect" if 300 <= status < 400 else "http_4xx", None)


class Alerter:
    """Turns risk transitions into deduplicated alerts and delivers them to the configured webhooks."""

    def __init__(
        self,
        store: AlertStore,
        config: AlertsConfig,
        session: aiohttp.ClientSession | None = None,
        *,
        clock: Callable[[], float] = time.time,
        random: Callable[[], float] = random_module.random,
        metrics: AlertMetrics | None = None,
        poll_s: float = POLL_S,
    ) -> None:
        """``session`` is used as given (tests, proxies) and then not closed; without one,
        ``run`` opens its own. ``clock`` gives unix seconds for timestamps and scheduling."""
        self._store = store
        self._config = config
        self._session = session
        self._clock = clock
        self._random = random
        self._metrics = metrics
        self._poll_s = poll_s
        self._names = [w.name for w in config.webhook]
        self._lease_s = max((w.timeout_s for w in config.webhook), default=0.0) + LEASE_MARGIN_S
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def submit(self, event: AlertEvent) -> bool:
        """Record and queue an alert; False when it repeats the last one for its session and cause.

        Safe to call from the event loop or from a worker thread; it does a short store write
        and no network I/O.
        """
        alert_id = secrets.token_hex(16)
        now = self._clock()
        record = AlertRecord(
            alert_id,
            event.session_id,
            event.therapist_id,
            event.client_id,
            event.kind,
            event.cause,
            event.end,
            event.state,
            tuple({"code": r.code, "end": r.end, "message": r.message, "action": r.action} for r in event.reasons),
            event.at,
            event.starts_at,
            now,
        )
        payloads = [
            (webhook.name, json.dumps(BUILDERS[webhook.format](alert_id, event), separators=(",", ":")))
            for webhook in self._config.webhook
            if webhook.wants(event.kind, event.therapist_id)
        ]
        added = self._store.add_alert(record, payloads)
        if self._metrics is not None:
            self._metrics.events.labels("queued" if added else "deduplicated").inc()
        if added:
            log.info(
                "alert raised",
                extra={"fields": {"alert_id": alert_id, "session_id": event.session_id, "kind": event.kind, "cause": event.cause, "webhooks": len(payloads)}},
            )
            if payloads:
                self.wake()
        return added

    def wake(self) -> None:
        """Tell the worker there is work now (thread-safe; a no-op before ``run`` starts)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    async def deliver_due(self) -> int:
        """Attempt every delivery due now (the head of each webhook's queue) and wait for them.
        Returns the number of attempts made. ``run`` does the same continuously."""
        async with self._client() as session:
            started = await self._start_due(session, {})
            await asyncio.gather(*started.values())
            return len(started)

    async def run(self) -> None:
        """Deliver until cancelled. Requests in flight at cancellation are abandoned; their
        deliveries stay pending and are attempted again after their lease."""
        self._loop = asyncio.get_running_loop()
        in_flight: dict[str, asyncio.Task[None]] = {}
        async with self._client() as session:
            try:
                while True:
                    self._wake.clear()
                    try:
                        in_flight.update(await self._start_due(session, in_flight))
                        timeout = await self._until_next_due(in_flight)
                    except Exception as error:
                        # A store hiccup (locked database, full disk) must not end delivery for good.
                        log_failed_pass(log, "alert worker could not read the outbox; trying again", error)
                        timeout = self._poll_s
                    waker = asyncio.create_task(self._wake.wait())
                    try:
                        await asyncio.wait([waker, *in_flight.values()], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        waker.cancel()
                    for name in [n for n, task in in_flight.items() if task.done()]:
                        in_flight.pop(name)
            finally:
                for task in in_flight.values():
                    task.cancel()
                await asyncio.gather(*in_flight.values(), return_exceptions=True)
                self._loop = None

    @contextlib.asynccontextmanager
    async def _client(self):
        if self._session is not None:
            yield self._session
            return
        async with aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}) as session:
            yield session

    async def _start_due(self, session: aiohttp.ClientSession, busy: dict[str, asyncio.Task[None]]) -> dict[str, asyncio.Task[None]]:
        now = self._clock()
        expired = await asyncio.to_thread(self._store.expire_alert_deliveries, now - self._config.max_age_s, self._names)
        if expired:
            log.warning("alert deliveries given up", extra={"fields": {"count": expired, "error": "expired_or_removed"}})
            if self._metrics is not None:
                self._metrics.deliveries.labels("failed").inc(expired)
        idle = [name for name in self._names if name not in busy]
        room = self._config.max_concurrent - len(busy)
        claimed = await asyncio.to_thread(self._store.claim_alert_deliveries, idle, now, self._lease_s, room)
        return {d.webhook: asyncio.create_task(self._attempt(session, d)) for d in claimed}

    async def _until_next_due(self, busy: dict[str, asyncio.Task[None]]) -> float:
        """Seconds until there may be something to start. A webhook with a request in flight,
        or no free slot at all, is woken by that request finishing instead."""
        idle = [name for name in self._names if name not in busy]
        if not idle or len(busy) >= self._config.max_concurrent:
            return self._poll_s
        due = await asyncio.to_thread(self._store.next_alert_attempt_at, idle)
        if due is None:
            return self._poll_s
        return min(self._poll_s, max(0.0, due - self._clock()))

    async def _attempt(self, session: aiohttp.ClientSession, delivery: PendingDelivery) -> None:
        webhook = self._config.webhook_named(delivery.webhook)
        if webhook is None:  # the config changed under a claimed row; the next sweep fails it
            return
        try:
            await self._attempt_once(session, webhook, delivery)
        except Exception:
            # The row keeps its lease and is attempted again when the lease runs out.
            log.exception("alert delivery could not be recorded", extra={"fields": {"webhook": webhook.name, "alert_id": delivery.alert_id}})

    async def _attempt_once(self, session: aiohttp.ClientSession, webhook: WebhookConfig, delivery: PendingDelivery) -> None:
        at = self._clock()
        started = time.perf_counter()
        result = await self._post(session, webhook, delivery)
        duration_s = time.perf_counter() - started
        attempt = delivery.attempts + 1
        outcome = result.outcome
        next_at = at
        if outcome == "retry":
            if attempt >= self._config.max_attempts:
                outcome = "failed"
            else:
                next_at = at + self._backoff_s(attempt, result.retry_after_s)
        await asyncio.to_thread(
            self._store.finish_alert_attempt, delivery.delivery_id, at, duration_s, outcome, result.status_code, result.error, next_at
        )
        if self._metrics is not None:
            self._metrics.deliveries.labels({"sent": "sent", "retry": "retried", "failed": "failed"}[outcome]).inc()
        fields = {
            "webhook": webhook.name,
            "alert_id": delivery.alert_id,
            "attempt": attempt,
            "status_code": result.status_code,
            "error": result.error,
            "duration_s": round(duration_s, 3),
        }
        if outcome == "sent":
            log.info("alert delivered", extra={"fields": fields})
        elif outcome == "retry":
            log.warning("alert delivery failed; will retry", extra={"fields": {**fields, "retry_in_s": round(next_at - at, 1)}})
        else:
            log.warning("alert delivery failed; giving up", extra={"fields": fields})

    async def _post(self, session: aiohttp.ClientSession, webhook: WebhookConfig, delivery: PendingDelivery) -> AttemptResult:
        body = delivery.payload.encode()
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, ALERT_ID_HEADER: delivery.alert_id}
        if webhook.secret:
            timestamp = str(int(self._clock()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = sign(webhook.secret, timestamp, body)
        # Exception texts can carry the URL (a Slack or Teams URL is a secret): only closed
        # codes leave this function.
        try:
            async with session.post(
                webhook.url, data=body, headers=headers, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=webhook.timeout_s)
            ) as response:
                return classify(response.status, response.headers.get("Retry-After"))
        except TimeoutError:
            return AttemptResult("retry", None, "timeout", None)
        except (aiohttp.ClientSSLError, aiohttp.ServerFingerprintMismatch):
            return AttemptResult("retry", None, "tls", None)
        except aiohttp.ClientConnectorError:
            return AttemptResult("retry", None, "connect", None)
        except (aiohttp.ClientError, OSError):
            return AttemptResult("retry", None, "network", None)

    def _backoff_s(self, attempt: int, retry_after_s: float | None) -> float:
        """After the ``attempt``-th failure: min(max, min * 2^(attempt-1)), jittered to 50-100 %
        so webhooks that failed together do not retry together; never sooner than Retry-After."""
        delay = half_jitter_s(attempt, self._config.min_backoff_s, self._config.max_backoff_s, self._random())
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self._config.max_backoff_s))
        return delay

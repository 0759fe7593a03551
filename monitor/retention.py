"""Retention: the ``[retention]`` config table and the background job that deletes what has
outlived its purpose (docs/privacy.md lists what is kept how long, and why).

The job runs at start and then every ``interval_minutes``. Each kind is deleted a batch at a
time (``batch_rows``), each batch one short transaction in a worker thread, so ingest and the
risk passes never wait for more than one batch. The store does the deleting
(``monitor.store.retention``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from monitor.logs import log_failed_pass
from monitor.store.protocols import RetentionStore
from monitor.store.retention import KINDS
from sessionready.config import ConfigError, decode_section
from sessionready.typed import limits

log = logging.getLogger("sessionready.monitor.retention")

DAY_S = 86_400.0
_DAYS = limits(ge=1, le=36_500)


@dataclass(frozen=True)
class RetentionConfig:
    """Days each kind is kept, by the monitor's clock at arrival (docs/privacy.md)."""

    samples_days: float = field(default=90.0, metadata=_DAYS)  # an agent's background and live samples
    checks_days: float = field(default=395.0, metadata=_DAYS)  # 13 months: a year's comparison, then gone
    risk_history_days: float = field(default=395.0, metadata=_DAYS)  # each session's risk changes
    alert_deliveries_days: float = field(default=90.0, metadata=_DAYS)  # webhook deliveries and their attempts
    alerts_days: float = field(default=395.0, metadata=_DAYS)  # an alert goes once its deliveries have
    trends_days: float = field(default=395.0, metadata=_DAYS)  # the hourly rollups Trends reads
    interval_minutes: float = field(default=60.0, metadata=limits(ge=1, le=1440))
    batch_rows: int = field(default=1000, metadata=limits(ge=10, le=100_000))

    def keep_s(self, kind: str) -> float:
        return float(getattr(self, f"{kind}_days")) * DAY_S


def load_retention(table: object, path: Path | str) -> RetentionConfig:
    """The ``[retention]`` table of a config file, validated; ConfigError names the key."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"config file {path}: 'retention' must be a table")
    return decode_section(RetentionConfig, table, path, "retention")


class RetentionJob:
    def __init__(
        self,
        store: RetentionStore,
        config: RetentionConfig,
        clock: Callable[[], float],
        counted: Callable[[str, int], None] = lambda kind, rows: None,
    ) -> None:
        """``counted(kind, rows)`` is told what each pass deleted (the metrics)."""
        self._store = store
        self._config = config
        self._clock = clock
        self._counted = counted

    async def run(self) -> None:
        """Passes until cancelled; a failed pass is logged and the next one tries again."""
        while True:
            try:
                await self.run_once()
            except Exception as error:  # noqa: BLE001 - a full disk or a locked store must not end the job
                log_failed_pass(log, "retention pass failed; trying again at the next interval", error)
            await asyncio.sleep(self._config.interval_minutes * 60.0)

    async def run_once(self) -> dict[str, int]:
        """One pass over every kind; returns the rows deleted per kind."""
        deleted: dict[str, int] = {}
        for kind in KINDS:
            before = self._clock() - self._config.keep_s(kind)
            total = 0
            while True:
                rows = await asyncio.to_thread(self._store.expire_batch, kind, before, self._config.batch_rows)
                total += rows
                if rows < self._config.batch_rows:
                    break
            deleted[kind] = total
            if total:
                self._counted(kind, total)
        if any(deleted.values()):
            log.info("retention deleted old rows", extra={"fields": {f"{kind}_rows": rows for kind, rows in deleted.items() if rows}})
        return deleted

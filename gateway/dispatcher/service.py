"""The rules service of a running gateway: rule files + hot reload, journal, dispatcher, targets.

Lifecycle (see `gateway.app`): ``service = await open_rules(config, services, sync)`` loads the rules and
recovers the journal before the broker listens; ``hook = service.start()`` starts dispatching (replaying
what the journal still holds) and returns the broker hook, which ``start_mqtt(..., hooks=(hook,))``
attaches before any listener opens; ``service.attach(broker)`` hands the broker to the actions (republish)
and starts hot reload; ``await service.stop()`` drains and checkpoints before the sinks stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp

from edgeloop.config import Config
from gateway.dispatcher.dispatcher import Dispatcher, DispatchSettings
from gateway.dispatcher.journal import Journal, Recovery
from gateway.dispatcher.reload import RuleReloader, ScanResult
from gateway.dispatcher.remote import RemoteTarget
from gateway.dispatcher.retry import Backoff
from gateway.dispatcher.store import RuleFiles
from gateway.dispatcher.targets import ActionTarget, LocalTarget
from gateway.storage.durable import GroupSync
from rules import RuleIndex

log = logging.getLogger("edgeloop.dispatcher")

JOURNAL_DIR = "journal"


class Targets:
    """Resolves an action's endpoint: None -> the local sinks, a URL -> a (cached) RemoteTarget."""

    def __init__(self, config: Config, local: LocalTarget) -> None:
        rules = config.rules
        self.local = local
        self.access_key = rules.remote_access_key or config.api.access_key
        self.secret_key = rules.remote_secret_key or config.api.secret_key
        self.region = rules.remote_region or config.aws.region
        self.timeout = rules.remote_timeout_secs
        self._remote: dict[str, RemoteTarget] = {}
        self._session: aiohttp.ClientSession | None = None

    def __call__(self, endpoint_url: str | None) -> ActionTarget:
        if endpoint_url is None:
            return self.local
        target = self._remote.get(endpoint_url)
        if target is None:
            if self._session is None:
                self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
            target = self._remote[endpoint_url] = RemoteTarget(endpoint_url, self._session, self.access_key,
                                                               self.secret_key, self.region)
        return target

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class RulesService:
    """Everything the gateway runs for topic rules."""

    def __init__(self, config: Config, services: dict[str, Any], sync: GroupSync) -> None:
        self.config = config
        rules = config.rules
        self.files = RuleFiles.for_config(config)
        self.index = RuleIndex()
        self.reloader = RuleReloader(self.files, self.index)
        self.journal = Journal(config.home / JOURNAL_DIR, rules.journal_segment_bytes)
        self._own_sync = bool(rules.journal_fsync) and rules.journal_fsync != config.durability.fsync
        self.sync = GroupSync(rules.journal_fsync, config.durability.interval_ms) if self._own_sync else sync
        self.broker: Any = None
        self.targets = Targets(config, LocalTarget(services, lambda: self.broker))
        settings = DispatchSettings(
            account_id=config.aws.account_id, batch_size=rules.batch_size,
            max_pending_per_rule=rules.max_pending_per_rule, checkpoint_interval=rules.checkpoint_interval_ms / 1000,
            backoff=Backoff(rules.max_attempts, rules.backoff_base_ms / 1000, rules.backoff_max_ms / 1000),
        )
        self.dispatcher = Dispatcher(self.journal, self.index, self.sync, self.targets, settings)
        self.recovery = Recovery()
        self._reload_task: asyncio.Task[None] | None = None
        self._started = False

    async def open(self) -> None:
        """Load the rule files and recover the journal (nothing is dispatched yet)."""
        result = await self.reloader.scan()
        self.recovery = await asyncio.to_thread(self.journal.open)
        self.dispatcher.watermark.value = self.journal.checkpointed
        log.info("event=rules_opened rules=%d rejected=%d journal_pending=%d torn_bytes=%d", len(result.loaded),
                 len(result.failed), len(self.recovery.pending), self.recovery.torn_bytes)

    def start(self) -> Dispatcher:
        """Start dispatching (journal replay first, in order) and return the broker hook (idempotent)."""
        if not self._started:
            self._started = True
            self.dispatcher.start(self.recovery.pending)
            self.recovery.pending = []
        return self.dispatcher

    def attach(self, broker: Any) -> None:
        """Hand the broker to the actions, hook on it (unless `start_mqtt` did already) and start hot reload."""
        self.broker = broker
        hook = self.start()
        if not any(h is hook for h in broker.hooks):
            broker.add_hook(hook)
        interval = self.config.rules.reload_interval_secs
        if interval > 0:
            self._reload_task = asyncio.get_running_loop().create_task(self.reloader.run(interval))

    async def rescan(self) -> ScanResult:
        """Apply rule-file changes now (the control plane calls this after writing a file)."""
        return await self.reloader.scan()

    async def stop(self) -> None:
        if self.broker is not None:
            with contextlib.suppress(ValueError):
                self.broker.remove_hook(self.dispatcher)
        if self._reload_task is not None:
            self._reload_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reload_task
        await self.dispatcher.stop(self.config.rules.drain_timeout_secs)
        await self.targets.close()
        await asyncio.to_thread(self.journal.close)
        if self._own_sync:
            await self.sync.close()

    def metrics(self) -> dict[str, Any]:
        """Counters: matched, dispatched, retried, failed (totals, per rule and per action), journal, reloads."""
        return {**self.dispatcher.snapshot(), **self.reloader.metrics, "rules_active": len(self.index),
                "rule_file_errors": dict(self.reloader.errors)}


async def open_rules(config: Config, services: dict[str, Any], sync: GroupSync) -> RulesService:
    service = RulesService(config, services, sync)
    await service.open()
    return service

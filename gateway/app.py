"""The gateway process: wires the components from the config and owns their lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import threading
from collections.abc import Coroutine
from typing import Any, Self, TypeVar

from edgeloop.config import Config
from gateway.admin.api import mount_admin
from gateway.admin.auth import token_path
from gateway.admin.metrics import MetricsSource, is_scrape, metrics_handler
from gateway.awsapi.server import AwsApi
from gateway.dispatcher import RulesService, add_rule_routes, open_rules
from gateway.identity.iot_api import IotControlPlane, add_registry_routes
from gateway.identity.registry import Registry
from gateway.jobs.routes import add_job_routes
from gateway.jobs.service import JobsService, start_jobs
from gateway.mqtt.server import MqttService, start_mqtt
from gateway.provisioning.routes import add_template_routes
from gateway.provisioning.service import ProvisioningService, start_provisioning
from gateway.shadow.http import create_shadow_http_service
from gateway.shadow.service import ShadowService, start_shadows
from gateway.sinks.registry import SERVICE_FACTORIES
from gateway.storage.durable import GroupSync

log = logging.getLogger("edgeloop.gateway")
T = TypeVar("T")


def install_uvloop() -> bool:
    """Use uvloop when it is installed (it is an optional extra)."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


class Gateway:
    """Every component of one gateway, started in dependency order and stopped in reverse."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.home = config.home
        self.sync = GroupSync(config.durability.fsync, config.durability.interval_ms)
        self.registry: Registry | None = None
        self.api: AwsApi | None = None
        self.mqtt: MqttService | None = None
        self.iot: IotControlPlane | None = None  # the `iot` control plane; components add their routes to it
        self.shadows: ShadowService | None = None
        self.services: dict[str, Any] = {}
        self.rules: RulesService | None = None
        self.jobs: JobsService | None = None
        self.provisioning: ProvisioningService | None = None

    async def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.registry = Registry.open(self.config)
        self.api = AwsApi(self.config)
        self.api.add_route(is_scrape, metrics_handler(self.metrics_sources))
        mount_admin(self)  # /_edgeloop/: creates <home>/admin-token when missing
        self.iot = IotControlPlane()
        add_registry_routes(self.iot, self.registry, self.config)
        self.api.register(self.iot)
        for name, factory in SERVICE_FACTORIES.items():
            self.services[name] = await factory(self.home, self.config, self.sync, self.services)
            self.api.register(self.services[name])
        # Rules are loaded and the journal recovered before the broker listens, so the dispatcher's hook
        # routes from the first message on.
        self.rules = await open_rules(self.config, self.services, self.sync) if self.config.rules.enabled else None
        hooks = (self.rules.start(),) if self.rules is not None else ()
        self.mqtt = await start_mqtt(self.config, self.registry, hooks=hooks)
        broker = self.mqtt.broker
        if self.rules is not None:
            self.rules.attach(broker)  # republish and hot reload
            add_rule_routes(self.iot, self.rules)
        self.shadows = await start_shadows(self.config, broker)
        self.api.register(await create_shadow_http_service(self.home, self.config, self.sync, self.shadows))
        api = self.api
        self.jobs = await start_jobs(self.config, self.registry, broker, lambda: api.url if api.port else None)
        add_job_routes(self.iot, self.jobs.engine)
        self.provisioning = await start_provisioning(self.config, self.registry, broker)
        add_template_routes(self.iot, self.provisioning.engine.store)
        await self.api.start()

    async def stop(self) -> None:
        """Clean shutdown in reverse order: the API and device services, the broker, the dispatcher (drained
        and checkpointed while the sinks are still open), the sinks, then storage."""
        for component in (self.api, self.shadows, self.jobs, self.provisioning, self.mqtt, self.rules,
                          *reversed(list(self.services.values()))):
            if component is not None:
                await component.stop()
        await self.sync.close()
        if self.registry is not None:
            self.registry.close()

    def metrics_sources(self) -> dict[str, MetricsSource]:
        """Every component's counters, by component name (what /metrics exposes)."""
        sources: dict[str, MetricsSource] = {}
        if self.mqtt is not None:
            sources["mqtt"] = self.mqtt.broker.metrics.snapshot
        if self.rules is not None:
            sources["rules"] = self.rules.metrics
        # (mypy cannot infer a lambda whose default argument binds the loop variable: the ignores below.)
        for name, component in (("shadows", self.shadows), ("jobs", self.jobs)):
            if component is not None:
                sources[name] = lambda c=component: dict(c.metrics)  # type: ignore[misc]
        for name, service in self.services.items():
            metrics = service.engine.metrics
            sources[name] = metrics if callable(metrics) else lambda m=metrics: m  # type: ignore[misc]
        sources["durability"] = lambda: {"fsync_batches": self.sync.batches, "fsyncs": self.sync.fsyncs}
        return sources

    def describe(self) -> list[str]:
        """Human-readable lines saying where everything listens."""
        lines = []
        if self.mqtt is not None:
            for name, port in sorted(self.mqtt.ports.items()):
                host = "127.0.0.1" if name == "dev" else self.config.mqtt.host
                lines.append(f"{name:>8}  {host}:{port}")
            gate = self.mqtt.sigv4
            if gate is not None:
                state = "on (api credentials)" if gate.enabled else f"off: {gate.why_off}"
                lines.append(f"{'sigv4':>8}  WebSocket on https {state}")
        if self.api is not None:
            lines.append(f"{'aws api':>8}  {self.api.url}  (access key {self.config.api.access_key!r})")
            lines.append(f"{'admin':>8}  {self.api.url}/_edgeloop/  (bearer token in {token_path(self.home)})")
        return lines


GC_YOUNG_THRESHOLD = 50_000  # allocations between young-generation collections (Python's default: 700)


def tune_gc() -> None:
    """Garbage collection for a long-running gateway, once it has started.

    Start-up objects (config, registry, compiled rules and policies) live forever: `gc.freeze()` keeps them out
    of every later collection. A message's objects live until its fsync, a few milliseconds; with Python's
    default of a young collection every 700 allocations most of them were still alive at each collection, so
    they were promoted and scanned again by the older generations (3-6 µs per message under load). Every
    50,000 allocations they have died by the time the collector looks.
    """
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


async def run_gateway(config: Config, ready: asyncio.Event | None = None) -> None:
    """Run a gateway until SIGINT/SIGTERM, then shut it down cleanly."""
    gateway = Gateway(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await gateway.start()
        tune_gc()
        for line in gateway.describe():
            print(line, flush=True)
        print("gateway ready", flush=True)
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        await gateway.stop()


class GatewayThread:
    """A gateway on its own event loop in a background thread, for callers that are synchronous
    (the demo, tests driving it with paho and boto3): ``with GatewayThread(config) as gw: ...``."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.gateway = Gateway(config)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="gateway", daemon=True)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run `coro` on the gateway's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self) -> Self:
        self._thread.start()
        try:
            self.call(self.gateway.start())
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.call(self.gateway.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

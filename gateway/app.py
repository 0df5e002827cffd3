"""The gateway process: wires the components from the config and owns their lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from edgeloop.config import Config
from gateway.awsapi.server import AwsApi
from gateway.dispatcher import RulesService, add_rule_routes, open_rules  # rules dispatcher
from gateway.identity.iot_api import IotControlPlane, add_registry_routes
from gateway.identity.registry import Registry
from gateway.jobs.routes import add_job_routes  # jobs + fleet provisioning
from gateway.jobs.service import JobsService, start_jobs  # jobs + fleet provisioning
from gateway.mqtt.server import MqttService, start_mqtt
from gateway.provisioning.routes import add_template_routes  # jobs + fleet provisioning
from gateway.provisioning.service import ProvisioningService, start_provisioning  # jobs + fleet provisioning
from gateway.shadow.http import create_shadow_http_service
from gateway.shadow.service import ShadowService, start_shadows
from gateway.sinks.registry import SERVICE_FACTORIES
from gateway.storage.durable import GroupSync

log = logging.getLogger("edgeloop.gateway")


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
        self.jobs: JobsService | None = None  # jobs + fleet provisioning
        self.provisioning: ProvisioningService | None = None  # jobs + fleet provisioning
        self.services: dict[str, Any] = {}
        self.rules: RulesService | None = None  # rules dispatcher

    async def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.registry = Registry.open(self.config)
        self.api = AwsApi(self.config)
        self.iot = IotControlPlane()
        add_registry_routes(self.iot, self.registry, self.config)
        self.api.register(self.iot)
        for name, factory in SERVICE_FACTORIES.items():
            self.services[name] = await factory(self.home, self.config, self.sync, self.services)
            self.api.register(self.services[name])
        # -- rules dispatcher: load the rules and recover the journal before the broker listens --
        self.rules = await open_rules(self.config, self.services, self.sync) if self.config.rules.enabled else None
        hooks = (self.rules.start(),) if self.rules is not None else ()  # rules dispatcher: routes from message one
        self.mqtt = await start_mqtt(self.config, self.registry, hooks=hooks)
        if self.rules is not None:  # rules dispatcher: republish and hot reload, then serve the iot routes
            self.rules.attach(self.mqtt.broker)
            add_rule_routes(self.iot, self.rules)
        self.shadows = await start_shadows(self.config, self.mqtt.broker)
        self.api.register(await create_shadow_http_service(self.home, self.config, self.sync, self.shadows))
        # -- jobs + fleet provisioning --
        api = self.api
        s3_endpoint = lambda: api.url if api.port else None  # noqa: E731
        self.jobs = await start_jobs(self.config, self.registry, self.mqtt.broker, s3_endpoint)
        add_job_routes(self.iot, self.jobs.engine)
        self.provisioning = await start_provisioning(self.config, self.registry, self.mqtt.broker)
        add_template_routes(self.iot, self.provisioning.engine.store)
        # -- end jobs + fleet provisioning --
        await self.api.start()

    async def stop(self) -> None:
        """Clean shutdown: listeners first, then services (flushing their state), then storage."""
        if self.api is not None:
            await self.api.stop()
        if self.shadows is not None:
            await self.shadows.stop()
        if self.jobs is not None:  # jobs + fleet provisioning
            await self.jobs.stop()
        if self.provisioning is not None:  # jobs + fleet provisioning
            await self.provisioning.stop()
        if self.mqtt is not None:
            await self.mqtt.stop()
        if self.rules is not None:  # rules dispatcher: drain and checkpoint before the sinks stop
            await self.rules.stop()
        for service in reversed(list(self.services.values())):
            await service.stop()
        await self.sync.close()
        if self.registry is not None:
            self.registry.close()

    def describe(self) -> list[str]:
        """Human-readable lines saying where everything listens."""
        lines = []
        if self.mqtt is not None:
            for name, port in sorted(self.mqtt.ports.items()):
                host = "127.0.0.1" if name == "dev" else self.config.mqtt.host
                lines.append(f"{name:>8}  {host}:{port}")
        if self.api is not None:
            lines.append(f"{'aws api':>8}  {self.api.url}  (access key {self.config.api.access_key!r})")
        return lines


async def run_gateway(config: Config, ready: asyncio.Event | None = None) -> None:
    """Run a gateway until SIGINT/SIGTERM, then shut it down cleanly."""
    gateway = Gateway(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await gateway.start()
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

"""Shared fixtures for the shadow tests: a broker (dev + TLS listeners), the shadow service and the
AWS-compatible API (``iotdata``) running together on one event-loop thread, and paho helpers."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeloop.config import Config
from gateway.awsapi.server import AwsApi
from gateway.shadow.http import create_shadow_http_service
from gateway.shadow.service import ShadowService, start_shadows
from tests.mqtt_helpers import TIMEOUT, BrokerThread, Client, broker_config


class ShadowGateway:
    """The pieces the shadow service talks to, on one loop; `restart_shadows()` reopens the store."""

    def __init__(self, config: Config, registry: Any = None) -> None:
        self.config = config
        self.bt = BrokerThread(config, registry)
        self.shadows: ShadowService | None = None
        self.api: AwsApi | None = None

    def start(self) -> ShadowGateway:
        self.bt.start()
        self.bt.call(self._start_services())
        return self

    async def _start_services(self, api_port: int = 0) -> None:
        self.shadows = await start_shadows(self.config, self.bt.broker)
        self.config.api.port = api_port
        self.api = AwsApi(self.config)
        self.api.register(await create_shadow_http_service(self.config.home, self.config, None, self.shadows))
        await self.api.start()

    async def _stop_services(self) -> None:
        if self.api is not None:
            await self.api.stop()
        if self.shadows is not None:
            await self.shadows.stop()

    def restart_shadows(self) -> None:
        """Stop the API and the shadow service (closing the database), then start both again."""
        assert self.api is not None
        port = self.api.port
        self.bt.call(self._stop_services())
        self.bt.call(self._start_services(port))

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.bt.call(self._stop_services())
        self.bt.stop()

    @property
    def dev_port(self) -> int:
        return self.bt.port

    @property
    def mqtts_port(self) -> int:
        assert self.bt.service is not None
        return self.bt.service.ports["mqtts"]

    def iot_data(self) -> Any:
        import boto3
        from botocore.config import Config as BotoConfig

        assert self.api is not None
        return boto3.client(
            "iot-data", endpoint_url=f"http://127.0.0.1:{self.api.port}", region_name="us-east-1",
            aws_access_key_id=self.config.api.access_key, aws_secret_access_key=self.config.api.secret_key,
            config=BotoConfig(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=15),
        )


@contextlib.contextmanager
def running_gateway(home: Path, registry: Any = None, **settings: Any) -> Iterator[ShadowGateway]:
    """`settings`: mqtt keys, plus ``fsync`` and ``shadow`` (a dict of shadow-section overrides)."""
    shadow = settings.pop("shadow", {})
    config = broker_config(home, **{"fsync": "always", **settings})
    for key, value in shadow.items():
        setattr(config.shadow, key, value)
    gw = ShadowGateway(config, registry)
    try:
        gw.start()
        yield gw
    finally:
        gw.stop()


class ShadowClient(Client):
    """A paho client that subscribes to a shadow's response topics and waits for JSON responses."""

    def watch(self, prefix: str, *suffixes: str) -> None:
        for suffix in suffixes or ("get/+", "update/+", "delete/+"):
            assert self.subscribe(f"{prefix}/{suffix}", 1)[0] in (1, 0x01)

    def request(self, topic: str, body: dict[str, Any] | bytes | str, qos: int = 1) -> None:
        payload = body if isinstance(body, bytes | str) else json.dumps(body)
        self.publish(topic, payload, qos)

    def next(self, timeout: float = TIMEOUT) -> tuple[str, dict[str, Any]]:
        message = self.get(timeout)
        return message.topic, json.loads(message.payload)

    def expect(self, topic: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next message on `topic`; messages on other topics before it are skipped."""
        while True:
            got, body = self.next(timeout)
            if got == topic:
                return body


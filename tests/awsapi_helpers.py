"""Run the AWS-compatible API in a background thread so synchronous clients (boto3, the aws CLI) can call it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from edgeloop.config import Config, load_config
from gateway.awsapi.server import AwsApi
from gateway.storage.durable import GroupSync

T = TypeVar("T")
ServicesFactory = Callable[[Config, GroupSync], Awaitable[list[Any]]]


@dataclass
class ApiHandle:
    """A running API: its endpoint, its config, and a way to run coroutines on its loop."""

    config: Config
    make_services: ServicesFactory
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    api: AwsApi | None = None
    services: list[Any] = field(default_factory=list)
    sync: GroupSync | None = None

    @property
    def endpoint(self) -> str:
        assert self.api is not None
        return f"http://127.0.0.1:{self.api.port}"

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run `coro` on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self, port: int = 0) -> None:
        self.config.api.port = port
        self.sync = GroupSync(self.config.durability.fsync, self.config.durability.interval_ms)
        self.services = await self.make_services(self.config, self.sync)
        self.api = AwsApi(self.config)
        for service in self.services:
            self.api.register(service)
        await self.api.start()

    async def _stop(self) -> None:
        if self.api is not None:
            await self.api.stop()
        for service in reversed(self.services):
            await service.stop()
        if self.sync is not None:
            await self.sync.close()

    def restart(self) -> None:
        """Stop everything cleanly and start again on the same port (state reloaded from disk)."""
        assert self.api is not None
        port = self.api.port
        self.call(self._stop())
        self.call(self._start(port))


@contextlib.contextmanager
def running_api(home: Path, make_services: ServicesFactory, **overrides: Any) -> Iterator[ApiHandle]:
    """Start the API on 127.0.0.1 with an ephemeral port and the given services; stop it afterwards.

    `overrides` are dotted config keys with "__" for "." (e.g. ``durability__fsync="never"``).
    """
    config = load_config(overrides={"data_dir": str(home), **{k.replace("__", "."): v for k, v in overrides.items()}})
    handle = ApiHandle(config, make_services)
    thread = threading.Thread(target=handle.loop.run_forever, name="awsapi-test", daemon=True)
    thread.start()
    try:
        handle.call(handle._start())
        yield handle
    finally:
        with contextlib.suppress(Exception):
            handle.call(handle._stop())
        handle.loop.call_soon_threadsafe(handle.loop.stop)
        thread.join(10)
        handle.loop.close()


def boto3_client(handle: ApiHandle, service_name: str) -> Any:
    """A boto3 client for the running API: region us-east-1, the configured keys, no retries."""
    import boto3
    from botocore.config import Config as BotoConfig

    return boto3.client(
        service_name,
        endpoint_url=handle.endpoint,
        region_name="us-east-1",
        aws_access_key_id=handle.config.api.access_key,
        aws_secret_access_key=handle.config.api.secret_key,
        config=BotoConfig(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
    )

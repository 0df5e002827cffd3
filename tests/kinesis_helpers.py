"""Shared helpers for the Kinesis tests: an engine on a temp data dir, the API with Kinesis mounted."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from edgeloop.config import Config, load_config
from gateway.sinks.kinesis import create_kinesis_service
from gateway.sinks.kinesis.engine import KinesisEngine
from gateway.storage.durable import GroupSync

T = TypeVar("T")


def kinesis_config(home: Path, **overrides: Any) -> Config:
    """A config for `home`; overrides are dotted keys with "__" for "." (``kinesis__enforce_limits=True``)."""
    return load_config(overrides={"data_dir": str(home), **{k.replace("__", "."): v for k, v in overrides.items()}})


@contextlib.asynccontextmanager
async def engine_for(home: Path, **overrides: Any) -> AsyncIterator[KinesisEngine]:
    """A started engine; stopped (files flushed and closed) afterwards."""
    config = kinesis_config(home, **overrides)
    sync = GroupSync(config.durability.fsync, config.durability.interval_ms)
    engine = KinesisEngine(home, config, sync)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()
        await sync.close()


def run(test: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    """Run an async test body with a timeout."""
    return asyncio.run(asyncio.wait_for(test(), timeout))


async def kinesis_services(config: Config, sync: GroupSync) -> list[Any]:
    """`running_api` factory: just Kinesis."""
    return [await create_kinesis_service(config.home, config, sync, {})]

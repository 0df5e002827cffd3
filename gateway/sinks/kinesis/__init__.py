"""Emulated Amazon Kinesis Data Streams: a durable engine plus its AWS-compatible wire layer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeloop.config import Config
from gateway.storage.durable import GroupSync


async def create_kinesis_service(home: Path, config: Config, sync: GroupSync, built: dict[str, Any]) -> Any:
    """Service factory (see `gateway.sinks.registry`): the started engine behind its wire layer.

    The engine itself, for in-process callers such as the rules engine, is the result's ``engine``.
    """
    from gateway.sinks.kinesis.engine import KinesisEngine
    from gateway.sinks.kinesis.wire import KinesisService

    engine = KinesisEngine(home, config, sync)
    await engine.start()
    return KinesisService(engine)

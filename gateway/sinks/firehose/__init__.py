"""Emulated Firehose: delivery streams buffering durably into S3, optionally fed by a Kinesis stream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeloop.config import Config
from gateway.storage.durable import GroupSync


async def create_service(home: Path, config: Config, sync: GroupSync, built: dict[str, Any]) -> Any:
    """Registry factory: a started Firehose service delivering through the S3 service in `built`."""
    from gateway.sinks.firehose.engine import FirehoseEngine
    from gateway.sinks.firehose.wire import FirehoseService

    s3 = built.get("s3")
    if s3 is None:
        raise RuntimeError("the firehose service needs the s3 service: start s3 before firehose")

    def kinesis_engine() -> Any:
        return getattr(built.get("kinesis"), "engine", None)

    engine = FirehoseEngine(home, config, sync, s3.engine, kinesis_engine)
    await engine.start()
    return FirehoseService(engine)

"""Emulated S3: the engine (in-process API), its storage, and the rest-xml wire layer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeloop.config import Config
from gateway.storage.durable import GroupSync


async def create_service(home: Path, config: Config, sync: GroupSync, built: dict[str, Any]) -> Any:
    """Registry factory: a started S3 service. Event notifications find the SQS service in `built` when sent."""
    from gateway.sinks.s3.engine import S3Engine
    from gateway.sinks.s3.wire import S3Service

    def sqs_engine() -> Any:
        service = built.get("sqs")
        return getattr(service, "engine", None)

    engine = S3Engine(home, config, sync, sqs_engine)
    await engine.start()
    return S3Service(engine)

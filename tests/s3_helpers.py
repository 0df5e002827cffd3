"""Shared fixtures for the S3 and Firehose suites: the API with S3 (and optionally Firehose/SQS) running."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeloop.config import Config
from gateway.storage.durable import GroupSync
from tests.awsapi_helpers import ApiHandle, running_api


def s3_services(with_sqs: bool = False, with_firehose: bool = False, with_kinesis: bool = False) -> Any:
    """A `make_services` for `running_api`: S3, plus SQS (notifications), Kinesis and Firehose when asked."""

    async def make(config: Config, sync: GroupSync) -> list[Any]:
        from gateway.sinks import s3
        from gateway.sinks.registry import SERVICE_FACTORIES

        built: dict[str, Any] = {}
        home = config.home
        for name, wanted in (("kinesis", with_kinesis), ("sqs", with_sqs)):
            if wanted:
                built[name] = await SERVICE_FACTORIES[name](home, config, sync, built)
        built["s3"] = await s3.create_service(home, config, sync, built)
        if with_firehose:
            from gateway.sinks import firehose

            built["firehose"] = await firehose.create_service(home, config, sync, built)
        return list(built.values())

    return make


def api(home: Path, **kwargs: Any) -> Iterator[ApiHandle]:
    with running_api(home, s3_services(**kwargs)) as handle:
        yield handle

"""Service factories by name: how the app and the dev server build the emulated AWS services.

A factory gets the data directory, the config, the shared GroupSync and the services built so far
(by name, so later services can use earlier ones, e.g. Firehose uses S3) and returns the started
service: an `AwsService` (see gateway.awsapi.service) with an `engine` attribute (the in-process API
the rules engine calls) and an `async stop()` that flushes and closes it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from edgeloop.config import Config
from gateway.sinks import firehose, s3
from gateway.sinks.kinesis import create_kinesis_service
from gateway.sinks.sqs.service import create_sqs_service
from gateway.storage.durable import GroupSync

ServiceFactory = Callable[[Path, Config, GroupSync, dict[str, Any]], Awaitable[Any]]

# name -> factory, in dependency order (a factory may use the services listed before it).
SERVICE_FACTORIES: dict[str, ServiceFactory] = {
    "kinesis": create_kinesis_service,
    "sqs": create_sqs_service,
    "s3": s3.create_service,
    "firehose": firehose.create_service,
}

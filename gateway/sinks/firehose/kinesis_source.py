"""KinesisStreamAsSource: read a Kinesis stream's shards through the Kinesis engine's API and buffer the records.

Per-shard checkpoints (the last sequence number buffered) are saved after the records are durable in the
Firehose buffer, so a restart resumes after them: delivery is at least once, like AWS's.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gateway.awsapi.errors import AwsError
from gateway.storage.durable import atomic_write

log = logging.getLogger("edgeloop.sinks.firehose")

POLL_SECONDS = 1.0  # AWS Firehose reads each shard about once per second
Sink = Callable[[list[bytes]], Awaitable[None]]


def _load(path: Path) -> dict[str, str]:
    return json.loads(path.read_text()) if path.exists() else {}


async def read_forever(kinesis: Callable[[], Any], stream_name: str, checkpoint_path: Path, sink: Sink) -> None:
    """Poll every shard of `stream_name` until cancelled, handing records to `sink` in shard order."""
    checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
    checkpoints: dict[str, str] = await asyncio.to_thread(_load, checkpoint_path)
    iterators: dict[str, str | None] = {}
    last_error = ""
    while True:
        engine = kinesis()
        busy = False
        if engine is not None:
            try:
                busy = await _poll(engine, stream_name, checkpoints, iterators, sink, checkpoint_path)
                last_error = ""
            except AwsError as exc:
                if exc.code != last_error:  # log a problem once, not every poll
                    log.warning("kinesis source not readable stream=%s error=%s", stream_name, exc.code)
                last_error = exc.code
                iterators.clear()
        if not busy:
            await asyncio.sleep(POLL_SECONDS)


async def _poll(engine: Any, stream_name: str, checkpoints: dict[str, str], iterators: dict[str, str | None],
                sink: Sink, checkpoint_path: Path) -> bool:
    busy = False
    for shard in engine.list_shards(stream_name)["Shards"]:
        shard_id = shard["ShardId"]
        if shard_id in iterators and iterators[shard_id] is None:
            continue  # closed and fully read
        iterator = iterators.get(shard_id)
        if iterator is None:
            seq = checkpoints.get(shard_id)
            kind = "AFTER_SEQUENCE_NUMBER" if seq else "TRIM_HORIZON"
            iterator = engine.get_shard_iterator(stream_name, shard_id, kind, seq)["ShardIterator"]
        out = await engine.get_records(iterator, 10000)
        records = out.get("Records", [])
        if records:
            await sink([r["Data"] for r in records])
            checkpoints[shard_id] = records[-1]["SequenceNumber"]
            data = json.dumps(checkpoints).encode()
            await asyncio.to_thread(atomic_write, checkpoint_path, data)
            busy = True
        iterators[shard_id] = out.get("NextShardIterator")
    return busy

"""The SQS hot paths write and issue exactly what the general code would: log lines, ids, receipt handles."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeloop.config import load_config
from gateway.awsapi.jsonenc import compact_encoder
from gateway.sinks.sqs.engine import SqsEngine
from gateway.sinks.sqs.errors import SqsError
from gateway.sinks.sqs.messages import new_message_id, new_receipt_handle, parse_receipt_handle
from gateway.sinks.sqs.oplog import decode_lines, encode
from gateway.storage.durable import GroupSync

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)


@given(json_values, st.booleans())
def test_compact_encoder_writes_what_json_dumps_writes(value: Any, ensure_ascii: bool) -> None:
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=ensure_ascii)
    assert compact_encoder(ensure_ascii)(value) == expected


def test_message_ids_are_random_uuid4_text() -> None:
    ids = [new_message_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    for message_id in ids[:500]:
        parsed = uuid.UUID(message_id)
        assert str(parsed) == message_id and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_receipt_handles_round_trip_and_old_handles_still_parse() -> None:
    message_id = new_message_id()
    nonce, handle = new_receipt_handle(message_id)
    assert handle == base64.urlsafe_b64encode(f"{message_id}:{nonce}".encode()).decode()
    assert parse_receipt_handle(handle) == (message_id, nonce)
    assert new_receipt_handle(message_id)[0] != nonce
    old_id, old_nonce = str(uuid.uuid4()), secrets.token_hex(12)  # how handles were made before
    old = base64.urlsafe_b64encode(f"{old_id}:{old_nonce}".encode()).decode()
    assert parse_receipt_handle(old) == (old_id, old_nonce)
    for bad in ("abc", "!" * 80, base64.urlsafe_b64encode(b"short:id").decode(), "é"):
        with pytest.raises(SqsError) as caught:
            parse_receipt_handle(bad)
        assert caught.value.code == "ReceiptHandleIsInvalid"


def test_receive_and_delete_log_lines_equal_the_json_encoders(home: Path) -> None:
    """The receive ("R") and delete ("D") records are formatted by hand: byte for byte what `encode` writes."""
    async def main() -> list[bytes]:
        config = load_config(overrides={"data_dir": str(home)})
        sync = GroupSync("always")
        engine = SqsEngine(home, config, sync)
        await engine.start()
        try:
            await engine.create_queue("q")
            await engine.send_message_batch("q", [{"Id": str(i), "MessageBody": f"m{i}"} for i in range(3)])
            received = await engine.receive_message("q", 10, 0, 45)
            await engine.delete_message_batch("q", [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                    for i, m in enumerate(received)])
        finally:
            await engine.stop()
            await sync.close()
        return (home / "sinks" / "sqs" / "q" / "ops.1.log").read_bytes().splitlines(keepends=True)

    lines = asyncio.run(asyncio.wait_for(main(), 30))
    records, _ = decode_lines(b"".join(lines))
    assert [r["o"] for r in records] == ["Z", "S", "S", "S", "R", "R", "R", "D", "D", "D"]
    for line, record in zip(lines, records, strict=True):
        assert line == encode(record)
    receives = [r for r in records if r["o"] == "R"]
    assert {r["id"] for r in receives} == {r["id"] for r in records if r["o"] == "S"}
    assert all(r["c"] == 1 and isinstance(r["v"], float) and len(r["r"]) == 24 for r in receives)

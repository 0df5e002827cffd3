"""The SQS engine in process: queue semantics, FIFO, redrive, long polling, durability and recovery."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from edgeloop.config import load_config
from gateway.sinks.sqs.engine import SqsEngine
from gateway.sinks.sqs.errors import SqsError
from gateway.storage.durable import GroupSync

EngineTest = Callable[[SqsEngine], Awaitable[None]]


def run(home: Path, test: EngineTest, **overrides: Any) -> None:
    async def main() -> None:
        config = load_config(overrides={"data_dir": str(home), **overrides})
        sync = GroupSync(config.durability.fsync, config.durability.interval_ms)
        engine = SqsEngine(home, config, sync)
        await engine.start()
        try:
            await test(engine)
        finally:
            await engine.stop()
            await sync.close()
    asyncio.run(asyncio.wait_for(main(), 30))


def test_send_receive_delete_and_receipt_handles_change(home: Path) -> None:
    async def test(e: SqsEngine) -> None:
        await e.create_queue("q")
        sent = await e.send_message("q", "hello", {"a": {"DataType": "String", "StringValue": "v"}})
        assert sent["MD5OfMessageBody"] == "5d41402abc4b2a76b9719d911017c592"
        assert sent["MD5OfMessageAttributes"] == "a18cbb58171ebf4ce88d9fb787f9210b"
        first = await e.receive_message("q", 10, 0, 0, ["All"], ["All"])
        second = await e.receive_message("q", 10, 0, 0, ["All"])
        assert first[0]["MessageId"] == second[0]["MessageId"] == sent["MessageId"]
        assert first[0]["ReceiptHandle"] != second[0]["ReceiptHandle"]
        assert second[0]["Attributes"]["ApproximateReceiveCount"] == "2"
        assert first[0]["MessageAttributes"] == {"a": {"DataType": "String", "StringValue": "v"}}
        assert "MessageAttributes" not in second[0]
        await e.delete_message("q", first[0]["ReceiptHandle"])  # stale handle: deletes nothing
        assert e.get_queue_attributes("q", ["ApproximateNumberOfMessages"]) == {"ApproximateNumberOfMessages": "1"}
        await e.delete_message("q", second[0]["ReceiptHandle"])
        assert await e.receive_message("q", 10, 0) == []
    run(home, test)


def test_visibility_timeout_hides_then_change_visibility_releases(home: Path) -> None:
    async def test(e: SqsEngine) -> None:
        await e.create_queue("q", {"VisibilityTimeout": "600"})
        await e.send_message("q", "m")
        (got,) = await e.receive_message("q")
        assert await e.receive_message("q") == []
        counts = e.get_queue_attributes("q", ["ApproximateNumberOfMessagesNotVisible"])
        assert counts == {"ApproximateNumberOfMessagesNotVisible": "1"}
        await e.change_message_visibility("q", got["ReceiptHandle"], 0)
        with pytest.raises(SqsError) as err:
            await e.change_message_visibility("q", got["ReceiptHandle"], 10)
        assert err.value.code == "MessageNotInflight"
        (again,) = await e.receive_message("q")
        assert again["MessageId"] == got["MessageId"]
    run(home, test)


def test_long_poll_is_woken_by_a_send(home: Path) -> None:
    async def test(e: SqsEngine) -> None:
        await e.create_queue("q")
        started = time.monotonic()
        poll = asyncio.create_task(e.receive_message("q", 1, 20))
        await asyncio.sleep(0)  # let the poll park itself
        await e.send_message("q", "wake up")
        (got,) = await asyncio.wait_for(poll, 5)
        assert got["Body"] == "wake up"
        assert time.monotonic() - started < 5
    run(home, test)


def test_delayed_message_becomes_visible_and_wakes_a_long_poll(home: Path) -> None:
    async def test(e: SqsEngine) -> None:
        await e.create_queue("q")
        await e.send_message("q", "later", delay=1)
        assert e.get_queue_attributes("q", ["ApproximateNumberOfMessagesDelayed"])[
            "ApproximateNumberOfMessagesDelayed"] == "1"
        assert await e.receive_message("q") == []
        started = time.monotonic()
        (got,) = await e.receive_message("q", 1, 10)
        assert got["Body"] == "later" and 0.5 < time.monotonic() - started < 3
    run(home, test)


def test_fifo_orders_per_group_and_locks_groups_in_flight(home: Path) -> None:
    async def test(e: SqsEngine) -> None:
        await e.create_queue("f.fifo", {"FifoQueue": "true", "ContentBasedDeduplication": "true"})
        for i in range(4):
            await e.send_message("f.fifo", f"a{i}", group_id="A")
        await e.send_message("f.fifo", "b0", group_id="B")
        first = await e.receive_message("f.fifo", 2, 0, 600)
        assert [m["Body"] for m in first] == ["a0", "a1"]
        second = await e.receive_message("f.fifo", 10, 0, 600)
        assert [m["Body"] for m in second] == ["b0"]  # group A is locked while a0/a1 are in flight
        assert await e.receive_message("f.fifo", 10, 0) == []
        for m in first:
            await e.delete_message("f.fifo", m["ReceiptHandle"])
        rest = await e.receive_message("f.fifo", 10, 0, 600, ["All"])
        assert [m["Body"] for m in rest] == ["a2", "a3"]
        sequences = [int(m["Attributes"]["SequenceNumber"]) for m in rest]
        assert sequences == sorted(sequences) and rest[0]["Attributes"]["MessageGroupId"] == "A"
    run(home, test)


def test_fifo_deduplication_window_and_validation(home: Path) -> None:
    async def test(e: SqsEngine) -> None:
        await e.create_queue("f.fifo", {"FifoQueue": "true"})
        one = await e.send_message("f.fifo", "x", group_id="g", dedup_id="d1")
        two = await e.send_message("f.fifo", "x", group_id="g", dedup_id="d1")
        assert one["MessageId"] == two["MessageId"] and one["SequenceNumber"] == two["SequenceNumber"]
        assert len(await e.receive_message("f.fifo", 10, 0)) == 1
        with pytest.raises(SqsError) as err:
            await e.send_message("f.fifo", "x", group_id="g")
        assert err.value.code == "InvalidParameterValue" and "ContentBasedDeduplication" in err.value.message
        with pytest.raises(SqsError) as err:
            await e.send_message("f.fifo", "x", dedup_id="d2")
        assert err.value.code == "MissingParameter" and "MessageGroupId" in err.value.message
    run(home, test)


def test_redrive_moves_messages_to_the_dead_letter_queue(home: Path) -> None:
    async def test(e: SqsEngine) -> None:
        await e.create_queue("dlq")
        dlq_arn = e.get_queue_attributes("dlq", ["QueueArn"])["QueueArn"]
        policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})
        await e.create_queue("src", {"RedrivePolicy": policy})
        await e.send_message("src", "poison")
        for _ in range(2):
            assert len(await e.receive_message("src", 1, 0, 0)) == 1
        assert await e.receive_message("src", 1, 0, 0) == []
        (moved,) = await e.receive_message("dlq", 1, 0, None, ["All"])
        assert moved["Body"] == "poison"
        assert moved["Attributes"]["DeadLetterQueueSourceArn"] == e.arn("src")
        assert e.list_dead_letter_source_queues("dlq") == (["src"], None)
        metrics = e.metrics()
        assert (metrics["messages_sent"], metrics["messages_received"], metrics["messages_redriven"]) == (1, 3, 1)
        with pytest.raises(SqsError) as err:
            await e.create_queue("other", {"RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": e.arn("missing"), "maxReceiveCount": 1})})
        assert "does not exist" in err.value.message
    run(home, test)


def test_create_queue_is_idempotent_only_with_the_same_attributes(home: Path) -> None:
    async def test(e: SqsEngine) -> None:
        await e.create_queue("q", {"VisibilityTimeout": "45"})
        assert await e.create_queue("q", {"VisibilityTimeout": "45"}) == "q"
        assert await e.create_queue("q") == "q"
        with pytest.raises(SqsError) as err:
            await e.create_queue("q", {"VisibilityTimeout": "46"})
        assert err.value.code == "QueueNameExists" and err.value.query_code == "QueueAlreadyExists"
    run(home, test)


@pytest.mark.parametrize(("name", "attributes", "code"), [
    ("bad name", {}, "InvalidParameterValue"),
    ("x.fifo", {}, "InvalidParameterValue"),
    ("x", {"FifoQueue": "true"}, "InvalidParameterValue"),
    ("x", {"VisibilityTimeout": "43201"}, "InvalidAttributeValue"),
    ("x", {"MaximumMessageSize": "1023"}, "InvalidAttributeValue"),
    ("x", {"Colour": "blue"}, "InvalidAttributeName"),
    ("x", {"ContentBasedDeduplication": "true"}, "InvalidAttributeName"),
    ("x.fifo", {"FifoQueue": "true", "FifoThroughputLimit": "perMessageGroupId"}, "InvalidParameterValue"),
    ("x", {"RedrivePolicy": "{not json"}, "InvalidAttributeValue"),
])
def test_create_queue_rejects_bad_names_and_attributes(home: Path, name: str, attributes: dict[str, str],
                                                       code: str) -> None:
    async def test(e: SqsEngine) -> None:
        with pytest.raises(SqsError) as err:
            await e.create_queue(name, attributes)
        assert err.value.code == code
    run(home, test)


def test_message_validation(home: Path) -> None:
    async def test(e: SqsEngine) -> None:
        await e.create_queue("q", {"MaximumMessageSize": "1024"})
        cases: list[tuple[dict[str, Any], str]] = [
            ({"body": "x" * 1025}, "InvalidParameterValue"),
            ({"body": "bad \x01 char"}, "InvalidMessageContents"),
            ({"body": ""}, "MissingParameter"),
            ({"body": "x", "attributes": {"n": {"DataType": "Number", "StringValue": "abc"}}},
             "InvalidParameterValue"),
            ({"body": "x", "attributes": {"AWS.x": {"DataType": "String", "StringValue": "v"}}},
             "InvalidParameterValue"),
            ({"body": "x", "attributes": {"a": {"DataType": "Float", "StringValue": "1"}}}, "InvalidParameterValue"),
            ({"body": "x", "attributes": {f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(11)}},
             "InvalidParameterValue"),
            ({"body": "x", "delay": 901}, "InvalidParameterValue"),
        ]
        for kwargs, code in cases:
            with pytest.raises(SqsError) as err:
                await e.send_message("q", **kwargs)
            assert err.value.code == code, kwargs
        with pytest.raises(SqsError) as err:
            await e.delete_message("q", "not-a-handle")
        assert err.value.code == "ReceiptHandleIsInvalid"
        custom = await e.send_message("q", "x", {"t": {"DataType": "Number.float", "StringValue": "1.5"},
                                                 "b": {"DataType": "Binary.png", "BinaryValue": b"\x89PNG"}})
        assert len(custom["MD5OfMessageAttributes"]) == 32
    run(home, test)


def test_batches_report_per_entry_failures(home: Path) -> None:
    async def test(e: SqsEngine) -> None:
        await e.create_queue("q")
        result = await e.send_message_batch("q", [{"Id": "ok", "MessageBody": "a"},
                                                  {"Id": "bad", "MessageBody": "\x00"}])
        assert [s["Id"] for s in result["Successful"]] == ["ok"]
        assert result["Failed"] == [{"Id": "bad", "SenderFault": True, "Code": "InvalidMessageContents",
                                     "Message": result["Failed"][0]["Message"]}]
        for entries, code in [([], "EmptyBatchRequest"),
                              ([{"Id": str(i), "MessageBody": "a"} for i in range(11)], "TooManyEntriesInBatchRequest"),
                              ([{"Id": "a", "MessageBody": "a"}] * 2, "BatchEntryIdsNotDistinct"),
                              ([{"Id": "a b", "MessageBody": "a"}], "InvalidBatchEntryId")]:
            with pytest.raises(SqsError) as err:
                await e.send_message_batch("q", entries)
            assert err.value.code == code
    run(home, test)


def test_purge_and_its_cooldown(home: Path) -> None:
    async def test(e: SqsEngine) -> None:
        await e.create_queue("q")
        await e.send_message("q", "a")
        await e.purge_queue("q")
        assert await e.receive_message("q") == []
        with pytest.raises(SqsError) as err:
            await e.purge_queue("q")
        assert err.value.code == "PurgeQueueInProgress" and err.value.status == 403
    run(home, test)


def test_retention_expires_old_messages(home: Path) -> None:
    async def test(e: SqsEngine) -> None:
        await e.create_queue("q", {"MessageRetentionPeriod": "60"})
        await e.send_message("q", "old")
        queue = e.queue("q")
        assert queue.expire(time.time() + 61) == 1
        assert await e.receive_message("q") == []
        assert e.metrics()["messages_expired"] == 1
    run(home, test)


def test_state_survives_restart_including_in_flight_and_dedup(home: Path) -> None:
    ids: dict[str, Any] = {}

    async def before(e: SqsEngine) -> None:
        await e.create_queue("q", {"VisibilityTimeout": "600"})
        await e.create_queue("f.fifo", {"FifoQueue": "true"})
        await e.tag_queue("q", {"team": "edge"})
        for i in range(5):
            await e.send_message("q", f"m{i}")
        (ids["inflight"],) = await e.receive_message("q")
        ids["dup"] = await e.send_message("f.fifo", "x", group_id="g", dedup_id="d")

    async def after(e: SqsEngine) -> None:
        assert e.list_queue_tags("q") == {"team": "edge"}
        got = await e.receive_message("q", 10, 0)
        assert len(got) == 4 and ids["inflight"]["MessageId"] not in {m["MessageId"] for m in got}
        again = await e.send_message("f.fifo", "x", group_id="g", dedup_id="d")
        assert again["MessageId"] == ids["dup"]["MessageId"]
        await e.delete_message("q", ids["inflight"]["ReceiptHandle"])  # the handle is still valid after restart
        assert e.get_queue_attributes("q", ["All"])["ApproximateNumberOfMessagesNotVisible"] == "4"

    run(home, before)
    run(home, after)


def test_compaction_rolls_the_log_and_recovery_reads_it(home: Path) -> None:
    async def before(e: SqsEngine) -> None:
        await e.create_queue("q")
        for i in range(60):
            await e.send_message("q", f"m{i}")
            if i % 6:
                (got,) = await e.receive_message("q")
                await e.delete_message("q", got["ReceiptHandle"])

    async def after(e: SqsEngine) -> None:
        remaining = await e.receive_message("q", 10, 0)
        total = len(remaining)
        while remaining:
            remaining = await e.receive_message("q", 10, 0)
            total += len(remaining)
        assert total == 10

    run(home, before, **{"sqs.compact_min_records": 20})
    logs = sorted(p.name for p in (home / "sinks" / "sqs" / "q").glob("ops.*.log"))
    assert len(logs) == 1 and logs[0] != "ops.1.log"
    run(home, after)


def test_a_torn_log_tail_is_dropped_on_recovery(home: Path) -> None:
    async def before(e: SqsEngine) -> None:
        await e.create_queue("q")
        await e.send_message("q", "kept")

    async def after(e: SqsEngine) -> None:
        (got,) = await e.receive_message("q", 10, 0)
        assert got["Body"] == "kept"
        await e.send_message("q", "appended after recovery")

    run(home, before)
    (log_file,) = (home / "sinks" / "sqs" / "q").glob("ops.*.log")
    with log_file.open("ab") as f:
        f.write(b'0badc0de{"o":"S","id":"half-writ')
    run(home, after)
    assert log_file.read_bytes().count(b"half-writ") == 0


def test_deleting_a_queue_ends_its_long_polls(home: Path) -> None:
    async def test(e: SqsEngine) -> None:
        await e.create_queue("q")
        poll = asyncio.create_task(e.receive_message("q", 1, 20))
        await asyncio.sleep(0)  # let the poll park itself
        await e.delete_queue("q")
        assert await asyncio.wait_for(poll, 5) == []
        with pytest.raises(SqsError) as err:
            await e.send_message("q", "x")
        assert err.value.code == "QueueDoesNotExist"
        assert not (home / "sinks" / "sqs" / "q").exists()
    run(home, test)


def test_timer_index_stays_bounded_under_churn(home: Path) -> None:
    async def test(e: SqsEngine) -> None:
        await e.create_queue("q", {"VisibilityTimeout": "43200"})
        for _ in range(300):
            await e.send_message_batch("q", [{"Id": str(i), "MessageBody": "m"} for i in range(10)])
            got = await e.receive_message("q", 10, 0)
            await e.delete_message_batch("q", [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                               for i, m in enumerate(got)])
        queue = e.queue("q")
        assert not queue.messages and queue.timer_entries <= 1024
    run(home, test)


def test_compaction_under_concurrent_commits_keeps_exactly_the_live_messages(home: Path) -> None:
    kept: set[str] = set()

    async def before(e: SqsEngine) -> None:
        await e.create_queue("q", {"VisibilityTimeout": "600"})

        async def worker(w: int) -> None:
            for i in range(40):
                await e.send_message("q", f"{w}-{i}")
                (got,) = await e.receive_message("q", 1, 0)
                if i % 5:
                    await e.delete_message("q", got["ReceiptHandle"])
                else:
                    kept.add(got["Body"])  # left in flight

        await asyncio.gather(*(worker(w) for w in range(16)))

    async def after(e: SqsEngine) -> None:
        queue = e.queue("q")
        assert {m.body for m in queue.messages.values()} == kept
        assert all(m.receive_count == 1 and m.visible_at > time.time() for m in queue.messages.values())

    run(home, before, **{"sqs.compact_min_records": 50})
    (log_file,) = (home / "sinks" / "sqs" / "q").glob("ops.*.log")
    assert int(log_file.name.split(".")[1]) > 5  # compacted many times while commits were in flight
    run(home, after)


def test_fifo_group_scoped_dedup_and_fifo_dead_letter_queue(home: Path) -> None:
    async def test(e: SqsEngine) -> None:
        await e.create_queue("dlq.fifo", {"FifoQueue": "true"})
        policy = json.dumps({"deadLetterTargetArn": e.arn("dlq.fifo"), "maxReceiveCount": 1})
        await e.create_queue("src.fifo", {"FifoQueue": "true", "DeduplicationScope": "messageGroup",
                                          "FifoThroughputLimit": "perMessageGroupId", "RedrivePolicy": policy})
        a = await e.send_message("src.fifo", "x", group_id="A", dedup_id="same")
        b = await e.send_message("src.fifo", "x", group_id="B", dedup_id="same")
        assert a["MessageId"] != b["MessageId"]  # dedup ids are per group with messageGroup scope
        assert len(await e.receive_message("src.fifo", 10, 0, 0)) == 2
        assert await e.receive_message("src.fifo", 10, 0, 0) == []  # both exceeded maxReceiveCount 1
        moved = await e.receive_message("dlq.fifo", 10, 0, None, ["All"])
        assert sorted(m["Attributes"]["MessageGroupId"] for m in moved) == ["A", "B"]
        with pytest.raises(SqsError):
            await e.create_queue("std", {"RedrivePolicy": policy})  # a standard queue needs a standard DLQ
    run(home, test)

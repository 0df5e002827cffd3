"""The Kinesis engine in-process: hashing, sequence numbers, iterators, reads, resharding, retention, limits."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.sinks.kinesis import keys
from gateway.sinks.kinesis.errors import KinesisError
from gateway.sinks.kinesis.tokens import IteratorPosition
from tests.kinesis_helpers import engine_for, run

FOUR_SHARD_STARTS = [0, 85070591730234615865843651857942052864, 170141183460469231731687303715884105728,
                     255211775190703847597530955573826158592]


def test_hash_key_layout_and_md5_routing_match_aws() -> None:
    assert [start for start, _ in keys.uniform_ranges(4)] == FOUR_SHARD_STARTS
    assert keys.uniform_ranges(4)[-1][1] == 2**128 - 1
    assert keys.partition_key_hash("pk1") == 329398341438914906102347661116985167824
    assert keys.partition_key_hash("sensor-42") == 128878897132442633898444915395154454596


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1), st.integers(0, 2**48 - 1), st.integers(0, 2**40 - 1))
def test_sequence_numbers_decode_and_look_like_aws(shard_ix: int, counter: int, arrival: int, created: int) -> None:
    text = keys.encode_sequence(shard_ix, counter, arrival, created)
    assert len(text) == 56 and text.isdigit()
    assert keys.decode_sequence(text) == (shard_ix, counter)


@given(st.integers(0, 1000), st.integers(1, 2**40), st.integers(0, 2**47), st.integers(0, 2**47))
def test_sequence_numbers_order_by_counter_first(shard_ix: int, counter: int, t1: int, t2: int) -> None:
    earlier = int(keys.encode_sequence(shard_ix, counter, t1, 5))
    later = int(keys.encode_sequence(shard_ix, counter + 1, t2, 5))
    assert later > earlier


@given(st.text(max_size=60))
def test_hash_key_parser_accepts_only_the_aws_range(text: str) -> None:
    value = keys.parse_hash_key(text)
    if value is not None:
        assert 0 <= value < 2**128 and str(value) == text


def test_put_routes_by_md5_and_explicit_hash_key(home: Path) -> None:
    async def body() -> None:
        async with engine_for(home) as engine:
            await engine.create_stream("s", 4)
            assert (await engine.put_record("s", b"x", "pk1"))["ShardId"] == "shardId-000000000003"
            assert (await engine.put_record("s", b"x", "sensor-42"))["ShardId"] == "shardId-000000000001"
            out = await engine.put_record("s", b"x", "pk1", explicit_hash_key="0")
            assert out["ShardId"] == "shardId-000000000000"
            with pytest.raises(KinesisError) as err:
                await engine.put_record("s", b"x", "pk", explicit_hash_key=str(2**128))
            assert err.value.code == "InvalidArgumentException"
    run(body)


def test_sequence_numbers_strictly_increase_per_shard_across_restarts(home: Path) -> None:
    async def write(n: int) -> list[int]:
        async with engine_for(home) as engine:
            if "s" not in engine.streams:
                await engine.create_stream("s", 1)
            out = await engine.put_records("s", [{"Data": b"d", "PartitionKey": f"k{i}"} for i in range(n)])
            return [int(r["SequenceNumber"]) for r in out["Records"]]

    first = run(lambda: write(50))
    second = run(lambda: write(50))
    combined = first + second
    assert combined == sorted(combined) and len(set(combined)) == 100


def test_iterator_types_and_paging(home: Path) -> None:
    async def body() -> None:
        async with engine_for(home) as engine:
            await engine.create_stream("s", 1)
            shard = "shardId-000000000000"
            before = time.time()
            puts = [await engine.put_record("s", f"r{i}".encode(), "k") for i in range(10)]
            seqs = [p["SequenceNumber"] for p in puts]

            async def read(kind: str, **kw: object) -> list[bytes]:
                it = engine.get_shard_iterator("s", shard, kind, **kw)["ShardIterator"]
                return [r["Data"] for r in (await engine.get_records(it))["Records"]]

            assert await read("TRIM_HORIZON") == [f"r{i}".encode() for i in range(10)]
            assert await read("LATEST") == []
            assert await read("AT_SEQUENCE_NUMBER", starting_sequence_number=seqs[3]) == [
                f"r{i}".encode() for i in range(3, 10)]
            assert await read("AFTER_SEQUENCE_NUMBER", starting_sequence_number=seqs[8]) == [b"r9"]
            assert len(await read("AT_TIMESTAMP", timestamp=before - 1)) == 10
            assert await read("AT_TIMESTAMP", timestamp=time.time() + 60) == []

            it = engine.get_shard_iterator("s", shard, "TRIM_HORIZON")["ShardIterator"]
            page = await engine.get_records(it, limit=4)
            assert [r["SequenceNumber"] for r in page["Records"]] == seqs[:4]
            assert page["MillisBehindLatest"] >= 0
            page = await engine.get_records(page["NextShardIterator"], limit=100)
            assert [r["SequenceNumber"] for r in page["Records"]] == seqs[4:]
            assert page["MillisBehindLatest"] == 0
            latest = engine.get_shard_iterator("s", shard, "LATEST")["ShardIterator"]
            await engine.put_record("s", b"new", "k")
            assert [r["Data"] for r in (await engine.get_records(latest))["Records"]] == [b"new"]
    run(body)


def test_bad_iterators_and_sequence_numbers(home: Path) -> None:
    async def body() -> None:
        async with engine_for(home) as engine:
            await engine.create_stream("s", 2)
            put = await engine.put_record("s", b"x", "pk1")  # shard 1 of 2
            with pytest.raises(KinesisError) as err:
                engine.get_shard_iterator("s", "shardId-000000000000", "AT_SEQUENCE_NUMBER",
                                          starting_sequence_number=put["SequenceNumber"])
            assert err.value.code == "InvalidArgumentException" and "encodes shardId-000000000001" in err.value.message
            for bad in ("12", "abc"):
                with pytest.raises(KinesisError) as err:
                    engine.get_shard_iterator("s", put["ShardId"], "AT_SEQUENCE_NUMBER", starting_sequence_number=bad)
                assert err.value.code == "InvalidArgumentException"
            with pytest.raises(KinesisError) as err:
                engine.get_shard_iterator("s", "shardId-000000000009", "LATEST")
            assert err.value.code == "ResourceNotFoundException"
            with pytest.raises(KinesisError) as err:
                engine.get_shard_iterator("s", put["ShardId"], "SOMEWHERE")
            assert err.value.code == "ValidationException"
            with pytest.raises(KinesisError) as err:
                await engine.get_records("AAAA" + engine.get_shard_iterator("s", put["ShardId"], "LATEST")
                                         ["ShardIterator"][4:])
            assert err.value.code == "InvalidArgumentException"
            stream = engine.streams["s"]
            stale = engine.signer.iterator(IteratorPosition("s", stream.created_ms, 1, 1,
                                                            int(time.time() * 1000) - 301_000))
            with pytest.raises(KinesisError) as err:
                await engine.get_records(stale)
            assert err.value.code == "ExpiredIteratorException"
    run(body)


def test_split_merge_and_closed_shard_iteration(home: Path) -> None:
    async def body() -> None:
        async with engine_for(home) as engine:
            await engine.create_stream("s", 2)
            before = await engine.put_record("s", b"before", "k", explicit_hash_key="5")
            it = engine.get_shard_iterator("s", "shardId-000000000000", "TRIM_HORIZON")["ShardIterator"]
            await engine.split_shard("s", "shardId-000000000000", str(2**126))
            with pytest.raises(KinesisError) as err:
                await engine.split_shard("s", "shardId-000000000000", str(2**126))
            assert err.value.code == "ResourceInUseException"
            with pytest.raises(KinesisError) as err:
                await engine.split_shard("s", "shardId-000000000001", "1")
            assert err.value.code == "InvalidArgumentException"
            after = await engine.put_record("s", b"after", "k", explicit_hash_key="5")
            assert after["ShardId"] == "shardId-000000000002"
            shards = {s["ShardId"]: s for s in engine.list_shards("s")["Shards"]}
            parent = shards["shardId-000000000000"]
            assert parent["SequenceNumberRange"]["EndingSequenceNumber"] == before["SequenceNumber"]
            assert shards["shardId-000000000003"]["ParentShardId"] == "shardId-000000000000"
            page = await engine.get_records(it)
            assert [r["Data"] for r in page["Records"]] == [b"before"]
            assert "NextShardIterator" not in page
            assert {c["ShardId"] for c in page["ChildShards"]} == {"shardId-000000000002", "shardId-000000000003"}
            open_ids = [s["ShardId"] for s in engine.list_shards("s", shard_filter={"Type": "AT_LATEST"})["Shards"]]
            assert open_ids == ["shardId-000000000001", "shardId-000000000002", "shardId-000000000003"]
            with pytest.raises(KinesisError) as err:
                await engine.merge_shards("s", "shardId-000000000002", "shardId-000000000001")
            assert err.value.code == "InvalidArgumentException"  # not adjacent
            await engine.merge_shards("s", "shardId-000000000003", "shardId-000000000001")
            merged = engine.list_shards("s")["Shards"][-1]
            assert merged["ShardId"] == "shardId-000000000004"
            assert (merged["ParentShardId"], merged["AdjacentParentShardId"]) == (
                "shardId-000000000003", "shardId-000000000001")
            result = await engine.update_shard_count("s", 4, "UNIFORM_SCALING")
            assert (result["CurrentShardCount"], result["TargetShardCount"]) == (2, 4)
            assert len(engine.streams["s"].open_shards) == 4
            with pytest.raises(KinesisError) as err:
                await engine.update_shard_count("s", 9, "UNIFORM_SCALING")
            assert err.value.code == "InvalidArgumentException"
        async with engine_for(home) as engine:  # the resharded layout survives a restart
            assert len(engine.streams["s"].open_shards) == 4
            assert engine.describe_stream_summary("s")["StreamDescriptionSummary"]["OpenShardCount"] == 4
    run(body)


def test_list_shards_pagination_and_filters(home: Path) -> None:
    async def body() -> None:
        async with engine_for(home) as engine:
            await engine.create_stream("s", 5)
            page = engine.list_shards("s", max_results=2)
            ids = [s["ShardId"] for s in page["Shards"]]
            while "NextToken" in page:
                page = engine.list_shards("s", next_token=page["NextToken"], max_results=2)
                ids += [s["ShardId"] for s in page["Shards"]]
            assert ids == [keys.shard_id(i) for i in range(5)]
            after = engine.list_shards("s", shard_filter={"Type": "AFTER_SHARD_ID", "ShardId": "shardId-000000000002"})
            assert [s["ShardId"] for s in after["Shards"]] == ["shardId-000000000003", "shardId-000000000004"]
            start = engine.list_shards("s", exclusive_start_shard_id="shardId-000000000003")
            assert [s["ShardId"] for s in start["Shards"]] == ["shardId-000000000004"]
            with pytest.raises(KinesisError) as err:
                engine.list_shards()
            assert err.value.code == "InvalidArgumentException"
            with pytest.raises(KinesisError) as err:
                engine.list_shards(next_token="bm90IG91cnM=")
            assert err.value.code == "InvalidArgumentException"
    run(body)


def test_retention_bounds(home: Path) -> None:
    async def body() -> None:
        async with engine_for(home) as engine:
            await engine.create_stream("s", 1)
            await engine.increase_retention("s", 48)
            for call, hours in ((engine.increase_retention, 24), (engine.decrease_retention, 72),
                                (engine.decrease_retention, 12), (engine.increase_retention, 9000)):
                with pytest.raises(KinesisError) as err:
                    await call("s", hours)
                assert err.value.code == "InvalidArgumentException"
            await engine.decrease_retention("s", 24)
            assert engine.describe_stream("s")["StreamDescription"]["RetentionPeriodHours"] == 24
    run(body)


def test_retention_trims_expired_records(home: Path) -> None:
    async def body() -> None:
        async with engine_for(home, kinesis__segment_bytes=64) as engine:  # 3 records (31 bytes each) per segment
            await engine.create_stream("s", 1)
            shard = engine.streams["s"].shards[0]
            old = int(time.time() * 1000) - 30 * 3_600_000  # records from 30 hours ago, then fresh ones
            assert shard.log is not None
            for i in range(5):
                _, _, handle = shard.log.append([(b"k", f"old{i}".encode())], old)
                await engine.sync.sync(handle)
            await engine.put_record("s", b"fresh", "k")  # makes the old records visible too
            it = engine.get_shard_iterator("s", shard.shard_id, "TRIM_HORIZON")["ShardIterator"]
            assert [r["Data"] for r in (await engine.get_records(it))["Records"]] == [b"fresh"]
            segments_before = len(shard.log.segments)
            await engine._trim(engine.streams["s"])
            assert (segments_before, len(shard.log.segments)) == (2, 1)  # [old0-2] deleted; [old3, old4, fresh] kept
            assert len(list(shard.log.directory.glob("*.seg"))) == 1
            it = engine.get_shard_iterator("s", shard.shard_id, "TRIM_HORIZON")["ShardIterator"]
            assert [r["Data"] for r in (await engine.get_records(it))["Records"]] == [b"fresh"]
    run(body)


def test_throughput_limits_when_enabled(home: Path) -> None:
    async def body() -> None:
        async with engine_for(home, kinesis__enforce_limits=True, kinesis__write_records_per_sec=10) as engine:
            await engine.create_stream("s", 1)
            result = await engine.put_records("s", [{"Data": b"x", "PartitionKey": "k"}] * 500)
            assert 480 <= result["FailedRecordCount"] <= 490  # a burst of 10 records, then refused
            assert "SequenceNumber" in result["Records"][0]
            bad = result["Records"][-1]
            assert bad["ErrorCode"] == "ProvisionedThroughputExceededException"
            assert bad["ErrorMessage"].startswith("Rate exceeded for shard shardId-000000000000 in stream s")
            with pytest.raises(KinesisError) as err:
                await engine.put_record("s", b"x", "k")
            assert err.value.code == "ProvisionedThroughputExceededException"
            it = engine.get_shard_iterator("s", "shardId-000000000000", "LATEST")["ShardIterator"]
            codes = []
            for _ in range(7):
                try:
                    it = (await engine.get_records(it))["NextShardIterator"]
                    codes.append("ok")
                except KinesisError as exc:
                    codes.append(exc.code)
            assert "ProvisionedThroughputExceededException" in codes and codes[0] == "ok"
    run(body)


def test_stream_admin_errors(home: Path) -> None:
    async def body() -> None:
        async with engine_for(home) as engine:
            await engine.create_stream("s", 1, tags={"a": "1"})
            with pytest.raises(KinesisError) as err:
                await engine.create_stream("s", 1)
            assert err.value.code == "ResourceInUseException"
            for name in ("bad name", "", "x" * 129, "a/b"):
                with pytest.raises(KinesisError) as err:
                    await engine.create_stream(name, 1)
                assert err.value.code == "ValidationException"
            with pytest.raises(KinesisError) as err:
                await engine.create_stream("big", 10_000)
            assert err.value.code == "LimitExceededException"
            with pytest.raises(KinesisError) as err:
                await engine.put_record("missing", b"x", "k")
            assert err.value.code == "ResourceNotFoundException"
            assert err.value.message == "Stream missing under account 000000000000 not found."
            with pytest.raises(KinesisError) as err:
                await engine.put_record("s", b"x" * (1024 * 1024), "k")
            assert err.value.code == "ValidationException"
            with pytest.raises(KinesisError) as err:
                await engine.put_records("s", [{"Data": b"x", "PartitionKey": "k"}] * 501)
            assert err.value.code == "ValidationException"
            with pytest.raises(KinesisError) as err:
                await engine.put_records("s", [{"Data": b"x" * 1_000_000, "PartitionKey": "k"}] * 6)
            assert err.value.code == "InvalidArgumentException" and "5 MB" in err.value.message
            await engine.create_stream("od", mode="ON_DEMAND")
            summary = engine.describe_stream_summary("od")["StreamDescriptionSummary"]
            assert summary["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"} and summary["OpenShardCount"] == 4
            await engine.delete_stream("s")
            await engine.create_stream("s", 2)  # the name is free again, with fresh shards
            assert engine.describe_stream_summary("s")["StreamDescriptionSummary"]["OpenShardCount"] == 2
    run(body)


def test_subscription_pushes_records_then_child_shards_when_closed(home: Path) -> None:
    async def body() -> None:
        async with engine_for(home) as engine:
            await engine.create_stream("s", 1)
            arn = engine.streams["s"].arn
            consumer = (await engine.register_consumer(arn, "c"))["Consumer"]["ConsumerARN"]
            first = await engine.put_record("s", b"one", "k")
            subscription = engine.subscribe(consumer, "shardId-000000000000", {"Type": "TRIM_HORIZON"})
            with pytest.raises(KinesisError) as err:
                engine.subscribe(consumer, "shardId-000000000000", {"Type": "LATEST"})
            assert err.value.code == "ResourceInUseException"
            events = subscription.events()
            event = await anext(events)
            assert [r["Data"] for r in event["Records"]] == [b"one"]
            assert event["ContinuationSequenceNumber"] == first["SequenceNumber"]
            pending = asyncio.ensure_future(anext(events))  # waits for the next record
            second = await engine.put_record("s", b"two", "k")
            event = await asyncio.wait_for(pending, 5)
            assert [r["SequenceNumber"] for r in event["Records"]] == [second["SequenceNumber"]]
            await engine.split_shard("s", "shardId-000000000000", str(2**127))
            final = await asyncio.wait_for(anext(events), 5)
            assert final["Records"] == [] and len(final["ChildShards"]) == 2
            with pytest.raises(StopAsyncIteration):
                await anext(events)
            again = engine.subscribe(consumer, "shardId-000000000001", {"Type": "LATEST"})  # the pair is free again
            waiting = asyncio.ensure_future(anext(again.events()))
            engine.end_subscriptions()  # shutdown ends open subscriptions at once
            with pytest.raises(StopAsyncIteration):
                await asyncio.wait_for(waiting, 5)
    run(body)


def test_a_live_reader_never_skips_records_of_overlapping_puts(home: Path) -> None:
    """Concurrent put_records on one shard commit in overlapping fsync batches; a reader following
    NextShardIterator from LATEST must see every record exactly once, in order (no record becomes visible
    before its own call made it durable, so none is skipped)."""

    async def body() -> None:
        async with engine_for(home, durability__fsync="always") as engine:
            await engine.create_stream("live", 1)
            shard_id = "shardId-000000000000"
            iterator = engine.get_shard_iterator("live", shard_id, "LATEST")["ShardIterator"]
            writers, per_writer, batch = 8, 15, 20
            total = writers * per_writer * batch

            async def writer(w: int) -> None:
                for i in range(per_writer):
                    records = [{"Data": b"%d-%d-%d" % (w, i, j), "PartitionKey": "k"} for j in range(batch)]
                    assert (await engine.put_records("live", records))["FailedRecordCount"] == 0

            async def reader() -> list[str]:
                seen: list[str] = []
                while len(seen) < total:
                    out = await engine.get_records(iterator_box[0], 10000)
                    seen += [r["SequenceNumber"] for r in out["Records"]]
                    iterator_box[0] = out["NextShardIterator"]
                    await asyncio.sleep(0)
                return seen

            iterator_box = [iterator]
            reading = asyncio.ensure_future(reader())
            await asyncio.gather(*(writer(w) for w in range(writers)))
            seen = await asyncio.wait_for(reading, 20)
            assert len(seen) == total and len(set(seen)) == total
            assert [int(s) for s in seen] == sorted(int(s) for s in seen)

    run(body)

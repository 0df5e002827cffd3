"""The journal: record codec and framing (property tests), recovery, torn tails, checkpoints, segments."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.dispatcher.journal import Journal, frame, read_frames
from gateway.dispatcher.record import JournalRecord, MqttProperties
from gateway.dispatcher.watermark import Watermark

names = st.from_regex(r"[A-Za-z0-9_]{1,12}", fullmatch=True)
text = st.text(max_size=30)
properties = st.builds(
    MqttProperties,
    st.lists(st.tuples(text, text), max_size=3).map(tuple),
    st.none() | text, st.none() | st.sampled_from([0, 1]), st.none() | text, st.none() | st.binary(max_size=16),
    st.none() | st.integers(1, 2**32 - 1),
)
records = st.builds(
    JournalRecord,
    st.integers(1, 2**63), st.integers(0, 2**63), st.sampled_from([0, 1, 2]), text, st.binary(max_size=200),
    st.lists(names, min_size=1, max_size=4).map(tuple), st.none() | text, st.none() | text, st.none() | text,
    properties,
)


@given(records)
def test_record_codec_round_trips(record: JournalRecord) -> None:
    assert JournalRecord.decode(record.encode()) == record


@given(st.lists(st.binary(max_size=64), max_size=8), st.data())
def test_read_frames_returns_exactly_the_complete_prefix(bodies: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(frame(b) for b in bodies)
    cut = data.draw(st.integers(0, len(stream)))
    got, end = read_frames(stream[:cut])
    complete = 0
    offset = 0
    for b in bodies:
        if offset + 8 + len(b) > cut:
            break
        offset += 8 + len(b)
        complete += 1
    assert got == bodies[:complete] and end == offset


@given(st.lists(st.binary(min_size=1, max_size=32), min_size=2, max_size=6), st.data())
def test_a_flipped_bit_ends_the_readable_prefix_at_that_record(bodies: list[bytes], data: st.DataObject) -> None:
    framed = [frame(b) for b in bodies]
    victim = data.draw(st.integers(0, len(bodies) - 1))
    buf = bytearray(b"".join(framed))
    start = sum(len(f) for f in framed[:victim]) + 8
    buf[start + data.draw(st.integers(0, len(bodies[victim]) - 1))] ^= 0x40
    got, end = read_frames(bytes(buf))
    assert got == bodies[:victim] and end == start - 8


@settings(max_examples=200)
@given(st.integers(1, 40), st.randoms(use_true_random=False))
def test_watermark_is_the_longest_finished_prefix(n: int, rng: random.Random) -> None:
    mark = Watermark(0)
    for seq in range(1, n + 1):
        mark.add(seq)
    order = list(range(1, n + 1))
    rng.shuffle(order)
    finished: set[int] = set()
    for seq in order:
        mark.done(seq)
        finished.add(seq)
        prefix = 0
        while prefix + 1 in finished:
            prefix += 1
        assert mark.value == prefix
    assert len(mark) == 0


def _record(seq: int, payload: bytes = b"{}") -> JournalRecord:
    return JournalRecord(seq, 1700000000000 + seq, 1, "t/x", payload, ("r",))


def _fill(journal: Journal, n: int) -> list[int]:
    seqs = []
    for _ in range(n):
        seq = journal.allocate()
        journal.append(_record(seq, b"x" * 100))
        seqs.append(seq)
    return seqs


def test_recovery_returns_what_is_past_the_checkpoint_and_sequences_continue(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    assert journal.open().pending == []
    assert _fill(journal, 10) == list(range(1, 11))
    journal.write_checkpoint(4)
    journal.close()

    again = Journal(tmp_path)
    recovery = again.open()
    assert [r.seq for r in recovery.pending] == list(range(5, 11)) and recovery.checkpoint == 4
    assert recovery.pending[0].payload == b"x" * 100
    assert again.allocate() == 11


def test_a_torn_tail_is_truncated_and_appends_continue_after_the_last_good_record(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    _fill(journal, 5)
    journal.close()
    segment = journal.segment_paths()[-1]
    whole = frame(_record(6).encode())
    with open(segment, "ab") as f:
        f.write(whole[: len(whole) // 2])  # a crash in the middle of a write

    again = Journal(tmp_path)
    recovery = again.open()
    assert [r.seq for r in recovery.pending] == [1, 2, 3, 4, 5]
    assert recovery.torn_bytes == len(whole) // 2
    _fill(again, 2)
    again.close()
    third = Journal(tmp_path).open()
    assert [r.seq for r in third.pending] == [1, 2, 3, 4, 5, 6, 7] and third.torn_bytes == 0


def test_segments_roll_over_and_checkpointed_ones_are_deleted(tmp_path: Path) -> None:
    journal = Journal(tmp_path, segment_bytes=1000)
    journal.open()
    _fill(journal, 40)  # ~150 bytes a record: several segments
    segments = journal.segment_paths()
    assert len(segments) >= 5
    journal.write_checkpoint(20)
    remaining = journal.segment_paths()
    assert len(remaining) < len(segments) and remaining[-1] == segments[-1]
    assert all(not p.exists() for p in segments if p not in remaining)
    journal.write_checkpoint(40)
    assert journal.segment_paths() == [segments[-1]]
    journal.close()
    recovery = Journal(tmp_path, segment_bytes=1000).open()
    assert recovery.pending == [] and recovery.checkpoint == 40


def test_a_damaged_checkpoint_replays_everything(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    _fill(journal, 3)
    journal.write_checkpoint(3)
    journal.close()
    (tmp_path / "checkpoint").write_text("{not json")
    assert [r.seq for r in Journal(tmp_path).open().pending] == [1, 2, 3]


def test_concurrent_checkpoint_writes_never_collide_or_move_back(tmp_path: Path) -> None:
    """A cancelled checkpointer's thread may still be writing when shutdown writes the last checkpoint."""
    journal = Journal(tmp_path)
    journal.open()
    _fill(journal, 200)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(journal.write_checkpoint, random.Random(7).sample(range(1, 201), 200)))
    assert journal.checkpointed == 200
    journal.close()
    assert Journal(tmp_path).open().checkpoint == 200


def test_a_record_gives_the_rules_engine_every_field() -> None:
    props = MqttProperties((("k", "v"),), "application/json", 1, "reply/to", b"\x01\x02", 30)
    record = JournalRecord(9, 1700000000123, 1, "a/b", b"{}", ("r",), "client-1", "cert-id", "trace-1", props)
    ctx = record.context("123456789012")
    assert (ctx.topic, ctx.payload, ctx.client_id, ctx.principal, ctx.trace_id, ctx.timestamp_ms, ctx.account_id,
            ctx.source_ip) == ("a/b", b"{}", "client-1", "cert-id", "trace-1", 1700000000123, "123456789012", None)
    assert (ctx.user_properties, ctx.content_type, ctx.payload_format_indicator, ctx.response_topic,
            ctx.correlation_data, ctx.message_expiry_s) == ((("k", "v"),), "application/json", 1, "reply/to",
                                                            b"\x01\x02", 30)

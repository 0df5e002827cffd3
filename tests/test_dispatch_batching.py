"""Batching on the hot path: the journal writes one batch per commit, the acknowledgement waits for that batch
on disk, and a backlog larger than one PutRecords call goes out as several calls that keep journal order."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from gateway.dispatcher.journal import FRAME, Journal, read_frames
from gateway.dispatcher.record import JournalRecord
from gateway.mqtt.message import Message
from tests.test_dispatch_support import ROLE, read_stream, rule_payload, running_gateway


def _record(seq: int) -> JournalRecord:
    return JournalRecord(seq, 1700000000000 + seq, 1, "t/x", json.dumps({"n": seq}).encode(), ("r",))


def _on_disk(path: Path) -> list[int]:
    bodies, _ = read_frames(path.read_bytes())
    return [JournalRecord.decode(b).seq for b in bodies]


def test_appends_are_queued_and_a_commit_writes_them_in_order(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    writer = journal.append(_record(journal.allocate()))
    for _ in range(49):
        assert journal.append(_record(journal.allocate())) is writer
    segment = journal.segment_paths()[-1]
    assert segment.stat().st_size == 0 and writer.queued  # nothing reaches the file before the commit
    framed = sum(FRAME.size + len(_record(seq).encode()) for seq in range(1, 51))
    assert writer.size == framed == journal.metrics["journal_bytes"]
    writer.commit()
    assert not writer.queued and segment.stat().st_size == framed
    assert _on_disk(segment) == list(range(1, 51))
    journal.append(_record(journal.allocate()))
    journal.close()  # commits what is still queued
    assert _on_disk(segment) == list(range(1, 52))
    assert [r.seq for r in Journal(tmp_path).open().pending] == list(range(1, 52))


def test_a_roll_over_commits_the_old_segment(tmp_path: Path) -> None:
    journal = Journal(tmp_path, segment_bytes=500)
    journal.open()
    for _ in range(20):
        journal.append(_record(journal.allocate()))
    *older, newest = journal.segment_paths()
    assert older and all(p.stat().st_size >= 500 for p in older)
    seqs = [seq for p in older for seq in _on_disk(p)]
    assert seqs == list(range(1, len(seqs) + 1))  # every closed segment complete and in order
    journal.close()
    assert seqs + _on_disk(newest) == list(range(1, 21))


def test_acks_wait_for_the_batch_on_disk_and_a_backlog_goes_out_in_several_ordered_calls(home: Path) -> None:
    """2,000 messages accepted in one loop iteration: the shared acknowledgement resolves only once every record
    is in the segment file; the backlog (more than one PutRecords call can carry, sent concurrently) lands in
    the stream in journal order."""
    total = 2000
    with running_gateway(home, **{"durability.fsync": "always"}) as gw:
        gw.client("kinesis").create_stream(StreamName="backlog", ShardCount=1)
        gw.client("iot").create_topic_rule(ruleName="backlog", topicRulePayload=rule_payload(
            "SELECT n FROM 'bl/+'", {"kinesis": {"roleArn": ROLE, "streamName": "backlog", "partitionKey": "p"}}))
        dispatcher = gw.rules.dispatcher
        journal = gw.rules.journal

        async def publish_all() -> tuple[list[int], list[int]]:
            waits = [dispatcher.on_publish(Message("bl/a", json.dumps({"n": i}).encode(), 1, client_id="c"))
                     for i in range(total)]
            assert all(w is waits[0] for w in waits)  # one shared future for the whole fsync batch
            segment = journal.segment_paths()[-1]
            before = _on_disk(segment)
            await asyncio.wait_for(waits[0], 20)
            return before, _on_disk(segment)

        before, after = gw.call(publish_all())
        assert before == []
        assert after[-total:] == list(range(after[-total], after[-total] + total))
        assert gw.drained()
        got = [json.loads(r)["n"] for r in read_stream(gw.client("kinesis"), "backlog")]
        actions = gw.rules.metrics()["rules"]["backlog"]["actions"]["kinesis#0"]
    assert got == list(range(total))
    assert actions["dispatched"] == total and actions["failed"] == 0


_FAILING_COMMIT = """
import resource, signal, sys
from pathlib import Path
from gateway.dispatcher.journal import Journal
from gateway.dispatcher.record import JournalRecord

journal = Journal(Path(sys.argv[1]))
journal.open()
def append(n):
    for _ in range(n):
        seq = journal.allocate()
        journal.append(JournalRecord(seq, seq, 1, "t/x", b"x" * 100, ("r",)))
append(5)
journal.writer.commit()
good = journal.writer.size
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (good + 300, resource.RLIM_INFINITY))  # room for about two records
append(5)
try:
    journal.writer.commit()
except OSError as exc:
    print("failed", exc.errno, journal.writer.size == good)
"""


def test_a_failed_commit_leaves_no_partial_frame(tmp_path: Path) -> None:
    """The file size limit makes the batch's write stop part-way: the segment is cut back to the last commit."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", _FAILING_COMMIT, str(tmp_path)], capture_output=True, text=True,
                            timeout=60, cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "failed" and result.stdout.split()[2] == "True"
    segment = sorted(tmp_path.glob("seg-*.log"))[-1]
    assert _on_disk(segment) == [1, 2, 3, 4, 5]
    assert read_frames(segment.read_bytes())[1] == segment.stat().st_size  # no torn tail


def test_rounds_overlap_and_keep_journal_order(home: Path) -> None:
    """SQS: bursts one loop iteration apart each become a round whose SendMessageBatch calls are issued while
    earlier rounds still wait for their durable commit. The in-process engine hands out a standard queue's
    never-received messages in the order they were sent, which makes the send order visible: journal order."""
    bursts, per_burst = 12, 150
    with running_gateway(home, **{"durability.fsync": "always"}) as gw:
        url = gw.client("sqs").create_queue(QueueName="rounds")["QueueUrl"]
        gw.client("iot").create_topic_rule(ruleName="rounds", topicRulePayload=rule_payload(
            "SELECT n FROM 'rd/+'", {"sqs": {"roleArn": ROLE, "queueUrl": url}}))
        dispatcher = gw.rules.dispatcher
        engine = gw.gateway.services["sqs"].engine

        async def publish_in_bursts_and_receive() -> tuple[int, list[int]]:
            most = 0
            waits = []
            for b in range(bursts):
                waits += [dispatcher.on_publish(Message("rd/a", json.dumps({"n": b * per_burst + i}).encode(), 1))
                          for i in range(per_burst)]
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                most = max(most, len(dispatcher.lanes["rounds"].rounds))
            await asyncio.wait_for(asyncio.gather(*{w for w in waits if w is not None}), 20)
            assert await dispatcher.drain(20)
            received: list[int] = []
            while batch := await engine.receive_message(url, 10, 0):
                received += [json.loads(m["Body"])["n"] for m in batch]
            return most, received

        most_in_flight, received = gw.call(publish_in_bursts_and_receive(), 60)
    assert most_in_flight >= 2
    assert received == list(range(bursts * per_burst))

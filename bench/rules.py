"""Rules-engine benchmark: compiled IoT SQL evaluations per second and topic-index lookup cost.

Run: ``.venv/bin/python bench/rules.py`` (add ``--quick`` for a short run). Single process, one core.
There is no other Python IoT SQL engine to compare with, so no peers run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

# This file is bench/rules.py: put the repository first so "rules" is the package, not this script.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rules import MessageContext, RuleIndex, TopicIndex, compile_sql, evaluate_rule, parse_topic_rule

PAYLOAD = json.dumps(
    {
        "temp": 31.5,
        "humidity": 40,
        "site": "north",
        "device": {"id": "d1", "status": "ok", "fw": "1.2.3"},
        "readings": {"temp": 31.5, "hum": 40, "bat": 3.9},
        "tags": ["a", "b", "c"],
    }
).encode()
TOPIC = "sensors/d1/telemetry"

RULES = {
    "select+where": "SELECT temp, humidity FROM 'sensors/+/telemetry' WHERE temp > 30",
    "nested paths": "SELECT device.id AS id, readings.temp AS t, readings.hum AS h FROM 'sensors/+/telemetry' "
    "WHERE readings.temp > 20 AND device.status = 'ok'",
    "functions": "SELECT topic(2) AS device, round(temp) AS temp, upper(site) AS site, timestamp() AS ts "
    "FROM 'sensors/+/telemetry' WHERE temp > 30",
}


def rate(fn: Callable[[], object], n: int, rounds: int = 7) -> float:
    """Calls per second of ``fn``: ``n`` calls split into ``rounds`` timed rounds, the fastest round wins
    (on a shared machine the fastest round is the one least disturbed by other processes)."""
    per_round = max(1, n // rounds)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(per_round):
            fn()
        best = min(best, time.perf_counter() - start)
    return per_round / best


def bench_evaluations(n: int) -> list[tuple[str, float, float]]:
    """Per rule: evaluations/s with the payload already parsed, and with a JSON parse per evaluation."""
    rows = []
    shared = MessageContext(TOPIC, PAYLOAD, timestamp_ms=1)
    for name, sql in RULES.items():
        q = compile_sql(sql, "2016-03-23")
        q.evaluate(shared)  # parses once; the document is cached on the context
        eval_only = rate(lambda q=q: q.evaluate(shared), n)
        with_parse = rate(lambda q=q: q.evaluate(MessageContext(TOPIC, PAYLOAD, timestamp_ms=1)), n)
        rows.append((name, eval_only, with_parse))
    return rows


def bench_shared_parse(n: int) -> float:
    """Evaluations/s when each message is parsed once and shared by all three rules."""
    compiled = [compile_sql(s, "2016-03-23") for s in RULES.values()]

    def one_message() -> None:
        msg = MessageContext(TOPIC, PAYLOAD, timestamp_ms=1)
        for c in compiled:
            c.evaluate(msg)

    return rate(one_message, n // len(compiled)) * len(compiled)


def bench_actions(n: int) -> float:
    rule = parse_topic_rule(
        "Bench",
        {
            "sql": RULES["functions"],
            "awsIotSqlVersion": "2016-03-23",
            "actions": [
                {
                    "kinesis": {
                        "roleArn": "arn:aws:iam::000000000000:role/r",
                        "streamName": "telemetry",
                        "partitionKey": "${topic(2)}",
                    }
                }
            ],
        },
    )
    msg = MessageContext(TOPIC, PAYLOAD, timestamp_ms=1)
    return rate(lambda: evaluate_rule(rule, msg), n)


def bench_per_message(n: int) -> list[tuple[str, float]]:
    """The rules work the dispatcher does per message and rule: a fresh MessageContext (JSON parse), WHERE,
    SELECT, the output encoded once, the action rendered. Calls/s for the end-to-end benchmark's rule
    (``SELECT *`` -> kinesis, key ``${topic(2)}``) and for a SELECT of plain attributes with WHERE."""
    rows = []
    kinesis = {"kinesis": {"roleArn": "arn:aws:iam::000000000000:role/r", "streamName": "telemetry",
                           "partitionKey": "${topic(2)}"}}
    for name, sql in (("SELECT * -> kinesis", "SELECT * FROM 'sensors/+/telemetry'"),
                      ("select+where -> kinesis", RULES["select+where"])):
        rule = parse_topic_rule("Bench", {"sql": sql, "awsIotSqlVersion": "2016-03-23", "actions": [kinesis]})
        rows.append((name, rate(lambda rule=rule: evaluate_rule(rule, MessageContext(TOPIC, PAYLOAD, timestamp_ms=1)),
                                n)))
    return rows


def bench_index(n: int) -> tuple[float, float, float]:
    """1,000 rules on distinct filters (a mix of exact, '+' and '#'); cached and uncached lookups."""
    index = RuleIndex()
    for i in range(1000):
        site, kind = i % 40, i // 40
        filters = [f"plant/{site}/line{kind}/telemetry", f"plant/{site}/+/alarm{kind}", f"plant/{site}/cfg{kind}/#"]
        index.put(parse_topic_rule(f"r{i}", {"sql": f"SELECT * FROM '{filters[i % 3]}'", "actions": []}))
    topics = [f"plant/{i % 40}/line{i % 25}/telemetry" for i in range(5000)]
    matched = sum(len(index.route(t)[0]) for t in topics[:100])
    tree: TopicIndex[int] = index._index  # the raw trie, to measure uncached lookups
    cached = rate(lambda: index.route(topics[0]), n)
    counter = iter(range(10**9))

    def uncached() -> None:
        tree._cache.clear()
        tree.match(topics[next(counter) % len(topics)])

    return cached, rate(uncached, n // 4), matched / 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args()
    n = 20_000 if args.quick else 200_000
    print(f"edgeloop rules engine benchmark (Python {sys.version.split()[0]}, one core, n={n})\n")
    print(f"{'rule':<14} {'evaluation only /s':>20} {'with JSON parse /s':>20}")
    for name, eval_only, parsed in bench_evaluations(n):
        print(f"{name:<14} {eval_only:>20,.0f} {parsed:>20,.0f}")
    print(f"\nall 3 rules, payload parsed once per message and shared: {bench_shared_parse(n):,.0f} evaluations/s")
    print(f"\nevaluate_rule() with a kinesis action (templates rendered): {bench_actions(n // 2):,.0f} /s")
    print("\nper message as the dispatcher runs it (fresh message: JSON parse, output encoded, action rendered):")
    for name, per_second in bench_per_message(n // 2):
        print(f"  {name:<24} {per_second:>10,.0f} /s  ({1e6 / per_second:.2f} us)")
    cached, uncached, per_topic = bench_index(n)
    print(f"\ntopic index, 1,000 rules on distinct filters ({per_topic:.1f} matching rules per topic):")
    print(f"  cached lookup   {1e6 / cached:8.2f} us  ({cached:,.0f} /s)")
    print(f"  uncached lookup {1e6 / uncached:8.2f} us  ({uncached:,.0f} /s)")


if __name__ == "__main__":
    main()

"""Prometheus text exposition of every component's counters.

Components report plain dicts of numbers; nested dicts become labels (``{"rules": {"r1": {"matched": 3}}}``
-> ``edgeloop_rules_matched{rule="r1"} 3``). Non-numeric values are left out.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from aiohttp import web

MetricsSource = Callable[[], Mapping[str, Any]]

# A nested dict under one of these keys holds one dict per label value; other nested dicts extend the name.
_LABELS = {"rules": "rule", "actions": "action", "rule_file_errors": "file", "queues": "queue",
           "streams": "stream", "buckets": "bucket"}
_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def _name(*parts: str) -> str:
    return _INVALID.sub("_", "_".join(p for p in parts if p)).lower()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _samples(metric: str, values: Mapping[str, Any],
             labels: tuple[tuple[str, str], ...]) -> Iterator[tuple[str, tuple[tuple[str, str], ...], float]]:
    for key, value in values.items():
        if isinstance(value, bool):
            yield _name(metric, key), labels, int(value)
        elif isinstance(value, int | float):
            yield _name(metric, key), labels, value
        elif isinstance(value, Mapping) and key in _LABELS:
            for child, sub in value.items():
                if isinstance(sub, Mapping):
                    yield from _samples(metric, sub, (*labels, (_LABELS[key], str(child))))
        elif isinstance(value, Mapping):
            yield from _samples(_name(metric, key), value, labels)


def render(sources: Mapping[str, MetricsSource]) -> str:
    """The exposition text for `sources` (component name -> function returning its counters)."""
    lines: list[str] = []
    for component, source in sources.items():
        own = f"{component}_"  # "s3_index_commits" from the s3 component is edgeloop_s3_index_commits
        values = {k.removeprefix(own): v for k, v in source().items()}
        for name, labels, value in _samples(_name("edgeloop", component), values, ()):
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            lines.append(f"{name}{{{label_text}}} {value}" if label_text else f"{name} {value}")
    return "\n".join(lines) + "\n"


def is_scrape(request: web.Request) -> bool:
    """An unsigned ``GET /metrics`` (a Prometheus scrape). Signed requests for ``/metrics`` stay S3's,
    so a bucket called "metrics" keeps working."""
    return (request.method == "GET" and request.path == "/metrics" and "Authorization" not in request.headers
            and "X-Amz-Signature" not in request.query and "Signature" not in request.query)


def metrics_handler(
    sources: Callable[[], Mapping[str, MetricsSource]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The /metrics handler for the components `sources()` returns at scrape time."""

    async def handle(request: web.Request) -> web.Response:
        return web.Response(text=render(sources()), content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})

    return handle

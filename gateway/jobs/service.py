"""The device side of IoT jobs over MQTT (`$aws/things/<thing>/jobs/...`), timeouts and continuous jobs.

Requests arrive through an internal broker subscription (after the broker's Publish policy check); the
engine runs in worker threads; answers go only to the requesting client (`delivery.reply`). Notifications
and `$aws/events/...` are published through the broker's normal path, so Receive policies and rules apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from edgeloop.config import Config
from gateway.identity.registry import Registry
from gateway.jobs import errors as e
from gateway.jobs.delivery import reply
from gateway.jobs.documents import Presigner
from gateway.jobs.engine import NEXT, Effect, JobsEngine
from gateway.jobs.errors import JobRejection
from gateway.jobs.store import JobStore
from gateway.mqtt.broker import Broker
from gateway.mqtt.message import Message

log = logging.getLogger("edgeloop.jobs")

REQUEST_FILTER = "$aws/things/+/jobs/#"
EVENT_QOS = 1
_OUTPUTS = ("accepted", "rejected")


def parse_request(topic: str) -> tuple[str, str, str | None]:
    """(thing, operation, jobId) of a jobs request topic; operation "" means "not a request" (our own
    outputs), "invalid" a topic under the jobs namespace that maps to no API."""
    parts = topic.split("/")
    thing, rest = parts[2], parts[4:]
    if not rest or rest[-1] in _OUTPUTS or rest in (["notify"], ["notify-next"]):
        return thing, "", None
    if rest == ["get"]:
        return thing, "get", None
    if rest == ["start-next"]:
        return thing, "start-next", None
    if len(rest) == 2 and rest[0] and rest[1] in ("get", "update"):
        return thing, rest[1], rest[0]
    return thing, "invalid", None


class JobsService:
    """Serves the jobs MQTT API for one broker; `engine` is shared with the control plane."""

    def __init__(self, config: Config, engine: JobsEngine, broker: Broker, registry: Registry) -> None:
        self.config = config
        self.engine = engine
        self.broker = broker
        self.registry = registry
        self.metrics: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: Any = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self._wake = asyncio.Event()
        self._timekeeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.engine.emit = self._emit_threadsafe
        self._handle = self.broker.subscribe_internal(REQUEST_FILTER, self.on_request)
        self._timekeeper = asyncio.create_task(self._keep_time())

    async def stop(self) -> None:
        if self._handle is not None:
            self.broker.unsubscribe_internal(self._handle)
            self._handle = None
        if self._timekeeper is not None:
            self._timekeeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timekeeper
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self.engine.emit = lambda effects: None
        await asyncio.to_thread(self.engine.store.close)

    # -- publishing ----------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _emit_threadsafe(self, effects: list[Effect]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._emit, effects)

    def _emit(self, effects: list[Effect]) -> None:
        self._wake.set()
        self._spawn(self._publish(effects))

    async def _publish(self, effects: list[Effect]) -> None:
        for topic, body in effects:
            try:
                await self.broker.publish(topic, json.dumps(body, separators=(",", ":")), EVENT_QOS)
            except Exception as exc:
                self.metrics["publish_failures"] += 1
                log.warning("event=jobs_publish_failed topic=%s error=%r", topic, exc)

    # -- requests ------------------------------------------------------------------------------------

    def on_request(self, message: Message) -> None:
        if message.origin == "internal":
            return
        thing, operation, job_id = parse_request(message.topic)
        if operation:
            self._spawn(self._serve(message, thing, operation, job_id))

    async def _serve(self, message: Message, thing: str, operation: str, job_id: str | None) -> None:
        self.metrics["requests"] += 1
        token: str | None = None
        try:
            request = _parse_json(message.payload)
            token = request.get("clientToken") if isinstance(request.get("clientToken"), str) else None
            if operation == "invalid":
                raise JobRejection(e.INVALID_TOPIC, f"{message.topic} does not map to any jobs API")
            body = await asyncio.to_thread(self._call, thing, operation, job_id, request)
            out = {**body, "timestamp": int(time.time())}
            if token is not None:
                out["clientToken"] = token
            await self._answer(message, f"{message.topic}/accepted", out)
        except JobRejection as exc:
            self.metrics[f"rejected_{exc.code}"] += 1
            await self._answer(message, f"{message.topic}/rejected", _rejected(exc, token))
        except Exception:
            log.exception("event=jobs_request_failed topic=%s", message.topic)
            rejection = JobRejection(e.INTERNAL_ERROR, "internal error while processing the request")
            await self._answer(message, f"{message.topic}/rejected", _rejected(rejection, token))

    def _call(self, thing: str, operation: str, job_id: str | None, request: dict[str, Any]) -> dict[str, Any]:
        if operation == "get" and job_id is None:
            return self.engine.pending(thing)
        if operation == "start-next":
            return self.engine.start_next(thing, request)
        assert job_id is not None
        if operation == "get":
            return self.engine.describe_for_device(thing, job_id, request)
        if job_id == NEXT:
            raise JobRejection(e.INVALID_TOPIC, "updates need a job id, not $next")
        return self.engine.update_from_device(thing, job_id, request)

    async def _answer(self, message: Message, topic: str, body: dict[str, Any]) -> None:
        payload = json.dumps(body, separators=(",", ":")).encode()
        if not await reply(self.broker, message.client_id, topic, payload):
            self.metrics["responses_unsubscribed"] += 1

    # -- timeouts and continuous jobs ----------------------------------------------------------------

    async def _keep_time(self) -> None:
        poll = self.config.jobs.membership_poll_secs
        generation = -1
        while True:
            try:
                self._wake.clear()  # before planning: a change made while we plan wakes the wait below
                deadline = await asyncio.to_thread(self.engine.next_deadline)
                continuous = await asyncio.to_thread(self.engine.has_continuous_jobs)
                waits = [d - time.time() for d in (deadline,) if d is not None]
                if continuous:
                    waits.append(poll)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), max(0.0, min(waits)) if waits else None)
                await asyncio.to_thread(self.engine.expire)
                if continuous and self.registry.generation() != generation:
                    generation = self.registry.generation()
                    await asyncio.to_thread(self.engine.reconcile_groups)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event=jobs_timekeeper_failed")
                await asyncio.sleep(poll)


def _parse_json(payload: bytes) -> dict[str, Any]:
    if not payload.strip():
        return {}
    try:
        value = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise JobRejection(e.INVALID_JSON, f"the request is not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise JobRejection(e.INVALID_JSON, "the request must be a JSON object")
    return value


def _rejected(exc: JobRejection, token: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": exc.code, "message": exc.message, "timestamp": int(time.time())}
    if token is not None:
        body["clientToken"] = token
    if exc.execution_state is not None:
        body["executionState"] = exc.execution_state
    return body


async def start_jobs(config: Config, registry: Registry, broker: Broker,
                     s3_endpoint: Callable[[], str | None] = lambda: None) -> JobsService:
    """Open `<home>/jobs.db` and serve the jobs MQTT API on `broker`.

    `s3_endpoint()` is the base URL of the local S3 API, used to presign `${aws:iot:s3-presigned-url:...}`.
    """
    store = await asyncio.to_thread(JobStore, config.home, config.durability.fsync != "never")

    def presigner() -> Presigner | None:
        endpoint = s3_endpoint()
        if endpoint is None:
            return None
        return Presigner(endpoint, config.api.access_key, config.api.secret_key, config.aws.region)

    service = JobsService(config, JobsEngine(store, registry, config, presigner=presigner), broker, registry)
    await service.start()
    return service

"""The fleet-provisioning MQTT API: `$aws/certificates/create[-from-csr]/<format>` and
`$aws/provisioning-templates/<name>/provision/<format>` (format `json` or `cbor`).

Answers go on `<request topic>/accepted` or `/rejected`, only to the requesting connection (they carry
private keys and ownership tokens). Expired ownership tokens are swept periodically.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from typing import Any

from edgeloop.config import Config
from gateway.identity.registry import Registry
from gateway.jobs.delivery import reply
from gateway.mqtt.broker import Broker
from gateway.mqtt.message import Message
from gateway.provisioning import cbor
from gateway.provisioning import errors as e
from gateway.provisioning.engine import ProvisioningEngine
from gateway.provisioning.errors import ProvisioningRejection
from gateway.provisioning.store import ProvisioningStore

log = logging.getLogger("edgeloop.provisioning")

FILTERS = ("$aws/certificates/#", "$aws/provisioning-templates/#")
FORMATS = ("json", "cbor")


def parse_topic(topic: str) -> tuple[str, str | None, str] | None:
    """(operation, template name, format) of a request topic; None for anything else (including answers)."""
    parts = topic.split("/")
    if len(parts) == 4 and parts[1] == "certificates" and parts[2] in ("create", "create-from-csr") and \
            parts[3] in FORMATS:
        return parts[2], None, parts[3]
    if len(parts) == 5 and parts[1] == "provisioning-templates" and parts[3] == "provision" and parts[4] in FORMATS:
        return "provision", parts[2], parts[4]
    return None


def decode(payload: bytes, fmt: str) -> dict[str, Any]:
    """A request body in `fmt`; an empty payload is an empty request."""
    if not payload.strip():
        return {}
    try:
        value = json.loads(payload) if fmt == "json" else cbor.decode(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProvisioningRejection(400, e.INVALID_PAYLOAD, f"the request is not valid {fmt.upper()}: {exc}") from exc
    if not isinstance(value, dict):
        raise ProvisioningRejection(400, e.INVALID_PAYLOAD, f"the request must be a {fmt.upper()} object")
    return value


def encode(body: dict[str, Any], fmt: str) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode() if fmt == "json" else cbor.encode(body)


class ProvisioningService:
    """Serves fleet provisioning on one broker."""

    def __init__(self, config: Config, engine: ProvisioningEngine, broker: Broker) -> None:
        self.config = config
        self.engine = engine
        self.broker = broker
        self.metrics: Counter[str] = Counter()
        self._handles: list[Any] = []
        self._tasks: set[asyncio.Future[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._handles = [self.broker.subscribe_internal(f, self.on_request) for f in FILTERS]
        self._sweeper = asyncio.create_task(self._sweep_forever())

    async def stop(self) -> None:
        for handle in self._handles:
            self.broker.unsubscribe_internal(handle)
        self._handles.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await asyncio.to_thread(self.engine.store.close)

    def on_request(self, message: Message) -> None:
        if message.origin == "internal":
            return
        parsed = parse_topic(message.topic)
        if parsed is not None:
            task = asyncio.ensure_future(self._serve(message, *parsed))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve(self, message: Message, operation: str, template: str | None, fmt: str) -> None:
        self.metrics[f"requests_{operation}"] += 1
        try:
            request = decode(message.payload, fmt)
            if operation == "create":
                body = await asyncio.to_thread(self.engine.create_keys_and_certificate)
            elif operation == "create-from-csr":
                body = await asyncio.to_thread(self.engine.create_from_csr, request)
            else:
                assert template is not None
                body = await asyncio.to_thread(self.engine.register_thing, template, request)
            topic, answer = f"{message.topic}/accepted", body
        except ProvisioningRejection as exc:
            self.metrics[f"rejected_{exc.error_code}"] += 1
            log.info("event=provisioning_rejected topic=%s code=%s message=%r", message.topic, exc.error_code,
                     exc.message)
            topic, answer = f"{message.topic}/rejected", exc.document()
        except Exception:
            log.exception("event=provisioning_request_failed topic=%s", message.topic)
            failure = ProvisioningRejection(500, e.INTERNAL_FAILURE, "internal failure while processing the request")
            topic, answer = f"{message.topic}/rejected", failure.document()
        if not await reply(self.broker, message.client_id, topic, encode(answer, fmt)):
            self.metrics["responses_unsubscribed"] += 1

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.engine.sweep)
            except Exception:
                log.exception("event=provisioning_sweep_failed")
            await asyncio.sleep(self.config.provisioning.sweep_interval_secs)


def open_store(config: Config) -> ProvisioningStore:
    return ProvisioningStore(config.home, config.aws.region, config.aws.account_id, config.durability.fsync != "never")


async def start_provisioning(config: Config, registry: Registry, broker: Broker) -> ProvisioningService:
    """Open `<home>/provisioning.db` and serve fleet provisioning on `broker`."""
    store = await asyncio.to_thread(open_store, config)
    service = ProvisioningService(config, ProvisioningEngine(store, registry, config), broker)
    await service.start()
    return service

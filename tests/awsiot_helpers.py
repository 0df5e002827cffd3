"""The AWS IoT Device SDK (awsiotsdk) against the gateway: an MQTT 5 client over mutual TLS and its
request/response streams, shared by the shadow, jobs and provisioning interop tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SDK_TIMEOUT = 10


@contextlib.contextmanager
def sdk_mqtt5(port: int, cert: Path, key: Path, ca: Path, client_id: str) -> Iterator[Any]:
    """An awsiotsdk MQTT 5 client connected over mutual TLS (stopped on exit)."""
    from concurrent.futures import Future

    from awsiot import mqtt5_client_builder

    connected: Future[bool] = Future()
    stopped: Future[bool] = Future()
    client = mqtt5_client_builder.mtls_from_path(
        endpoint="127.0.0.1", port=port, cert_filepath=str(cert), pri_key_filepath=str(key), ca_filepath=str(ca),
        client_id=client_id,
        on_lifecycle_connection_success=lambda _e: connected.done() or connected.set_result(True),
        on_lifecycle_connection_failure=lambda ev: connected.done() or connected.set_exception(
            RuntimeError(f"connection failed: {ev.exception}")),
        on_lifecycle_stopped=lambda _e: stopped.done() or stopped.set_result(True),
    )
    client.start()
    try:
        connected.result(SDK_TIMEOUT)
        yield client
    finally:
        client.stop()
        stopped.result(SDK_TIMEOUT)


def rr_options() -> Any:
    from awscrt import mqtt_request_response

    return mqtt_request_response.ClientOptions(max_request_response_subscriptions=4, max_streaming_subscriptions=4,
                                               operation_timeout_in_seconds=SDK_TIMEOUT)


def open_stream(factory: Any, request: Any) -> tuple[Any, Any]:
    """Open a V2 streaming operation, wait until its subscription is established; events arrive on the queue."""
    import queue
    from concurrent.futures import Future

    import awsiot
    from awscrt import mqtt_request_response

    events: queue.Queue[Any] = queue.Queue()
    established: Future[bool] = Future()

    def on_status(event: Any) -> None:
        kind = mqtt_request_response.SubscriptionStatusEventType
        if event.type == kind.SUBSCRIPTION_ESTABLISHED and not established.done():
            established.set_result(True)
        elif event.type == kind.SUBSCRIPTION_HALTED and not established.done():
            established.set_exception(RuntimeError(f"stream subscription halted: {event.error}"))

    stream = factory(request, awsiot.ServiceStreamOptions(events.put, subscription_status_listener=on_status))
    stream.open()
    established.result(SDK_TIMEOUT)
    return stream, events

"""Errors of the MQTT component: wire-format (codec) errors and broker errors."""

from __future__ import annotations

from edgeloop.errors import EdgeloopError


class MqttError(EdgeloopError):
    """Base class of every MQTT error."""


class MqttDecodeError(MqttError):
    """Malformed or protocol-violating input; the connection must be closed.

    `reason_code` is the MQTT 5 reason code to report (DISCONNECT, or CONNACK while connecting):
    0x81 malformed packet, 0x82 protocol error, 0x84 unsupported protocol version, 0x90 topic name
    invalid, 0x95 packet too large.
    """

    def __init__(self, message: str, reason_code: int = 0x81) -> None:
        super().__init__(message)
        self.message = message
        self.reason_code = reason_code

    def __reduce__(self) -> tuple[type[MqttDecodeError], tuple[str, int]]:
        return (type(self), (self.message, self.reason_code))


class MqttEncodeError(MqttError):
    """A packet object cannot be encoded (a value out of range, or not allowed in that packet or version)."""

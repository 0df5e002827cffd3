"""MQTT 3.1.1 / 5.0 wire codec: an incremental stream decoder and packet encoders.

`StreamDecoder.feed()` takes whatever bytes arrived on a connection and returns every complete packet in
them, keeping an incomplete tail for the next call; partial and coalesced packets are both handled. Input
that violates the specification raises `MqttDecodeError` carrying the MQTT 5 reason code to report; the
connection must then be closed and the decoder discarded.

Decoding validates everything that can be judged from the bytes alone. Rules that need connection state or
broker policy (topic-alias ranges, Receive Maximum, client-id rules, topic-filter syntax, payload UTF-8
when the payload format indicator is 1, direction-specific properties) belong to the broker.
"""

from gateway.mqtt.decoder import StreamDecoder
from gateway.mqtt.encoder import encode, encode_properties, encode_publish

__all__ = ["StreamDecoder", "encode", "encode_properties", "encode_publish"]

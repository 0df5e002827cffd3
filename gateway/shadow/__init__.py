"""Device shadows (AWS IoT protocol): the pure document algorithm, the durable store, the MQTT-facing
service and the `iot-data` HTTP API. See docs/shadows.md."""

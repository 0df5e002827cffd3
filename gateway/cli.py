"""`edgeloop gateway …`: run the gateway process."""

from __future__ import annotations

import asyncio

import click

from edgeloop.cli import AppContext


@click.group()
def gateway() -> None:
    """Run the gateway: MQTT broker, shadows, rules and the AWS-compatible API in one process."""


@gateway.command("run")
@click.option("--dev", is_flag=True, default=None, help="Also serve plain MQTT on 127.0.0.1 (dev principal).")
@click.option("--host", help="Address the device listeners bind to (MQTT/TLS and HTTPS).")
@click.option("--mqtt-port", type=int, help="MQTT over TLS port (default 8883; 0 = any free port).")
@click.option("--https-port", type=int, help="HTTPS/WebSocket/ALPN port (default 8443; 0 = any free port).")
@click.option("--dev-port", type=int, help="Plain MQTT port with --dev (default 1883).")
@click.option("--api-port", type=int, help="AWS-compatible API port (default 4566).")
@click.pass_obj
def run(app: AppContext, dev: bool | None, host: str | None, mqtt_port: int | None, https_port: int | None,
        dev_port: int | None, api_port: int | None) -> None:
    """Run the gateway in the foreground until Ctrl-C or SIGTERM (state is flushed on the way out)."""
    from gateway.app import install_uvloop, run_gateway

    overrides = {"mqtt.dev": dev, "mqtt.host": host, "mqtt.port": mqtt_port, "mqtt.https_port": https_port,
                 "mqtt.dev_port": dev_port, "api.port": api_port}
    app.apply_overrides(overrides)
    install_uvloop()
    asyncio.run(run_gateway(app.config))

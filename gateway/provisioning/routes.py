"""Provisioning-template operations of the AWS IoT control plane (boto3 `iot`), routes from the botocore model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.identity.iot_api import IotControlPlane, Params
from gateway.provisioning.store import ProvisioningStore


def add_template_routes(iot: IotControlPlane, store: ProvisioningStore) -> None:
    """Mount Create/Describe/List/Update/DeleteProvisioningTemplate on the `iot` control plane."""
    routes: list[tuple[str, str, Callable[[Params], dict[str, Any] | None]]] = [
        ("POST", "/provisioning-templates", lambda p: store.create(dict(p.body))),
        ("GET", "/provisioning-templates", lambda p: store.list(p.number("maxResults"), p.query.get("nextToken"))),
        ("GET", "/provisioning-templates/{templateName}", lambda p: store.describe(p.path["templateName"])),
        ("PATCH", "/provisioning-templates/{templateName}", lambda p: store.update(
            p.path["templateName"], dict(p.body))),
        ("DELETE", "/provisioning-templates/{templateName}", lambda p: store.delete(p.path["templateName"])),
    ]
    for method, template, handler in routes:
        iot.add_route(method, template, handler)

"""The AWS IoT control plane (boto3 `iot` client, restJson) for the registry: things, types, groups,
certificates, CAs and policies.

`IotControlPlane` is the one service signed as `iot`; other components (rules, jobs) add their own routes
to it with `add_route`. Routes and wire names follow the botocore `iot` model; registry calls block
(SQLite), so handlers run in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from edgeloop.config import Config
from edgeloop.errors import EdgeloopError
from gateway.awsapi.errors import AwsError
from gateway.awsapi.service import RequestContext, json_response, rest_json_error_response
from gateway.identity.awserrors import InvalidRequest, aws_error
from gateway.identity.registry import Registry
from gateway.identity.store import Page
from gateway.storage.durable import GroupSync


@dataclass(frozen=True)
class Params:
    """A request's inputs by where botocore puts them: path, query string, headers and JSON body."""

    path: Mapping[str, str]
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: Mapping[str, Any]

    def flag(self, name: str) -> bool:
        return self.query.get(name, "false").lower() == "true"

    def number(self, name: str) -> int | None:
        value = self.query.get(name)
        if value is None:
            return None
        if not value.isdigit():
            raise InvalidRequest(f"{name} must be a whole number, not {value!r}")
        return int(value)


Handler = Callable[[Params], dict[str, Any] | None]


class IotControlPlane:
    """An `AwsService` for the `iot` signing name: a table of restJson routes."""

    signing_name = "iot"
    target_prefixes: tuple[str, ...] = ()
    streaming = False

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry  # closed by stop(), when given
        self._routes: list[tuple[str, re.Pattern[str], list[str], Handler]] = []

    def add_route(self, method: str, template: str, handler: Handler) -> None:
        """Serve `method template` (botocore's requestUri, e.g. ``/things/{thingName}``) with `handler`."""
        names = re.findall(r"\{(\w+)\}", template)
        pattern = re.compile("^" + re.sub(r"\\\{\w+\\\}", "([^/]+)", re.escape(template)) + "$")
        self._routes.append((method, pattern, names, handler))

    async def handle(self, request: web.Request, ctx: RequestContext) -> web.StreamResponse:
        path = request.rel_url.raw_path
        for method, pattern, names, handler in self._routes:
            match = pattern.match(path) if method == request.method else None
            if match is None:
                continue
            try:
                body = json.loads(ctx.body) if ctx.body else {}
            except ValueError as exc:
                raise AwsError("InvalidRequestException", f"the request body is not valid JSON: {exc}") from exc
            params = Params(
                {n: unquote(v) for n, v in zip(names, match.groups(), strict=True)},
                dict(request.query), request.headers, body if isinstance(body, dict) else {},
            )
            try:
                result = await asyncio.to_thread(handler, params)
            except AwsError:
                raise
            except EdgeloopError as exc:  # every component's errors carry `aws_code` / `http_status`
                status, code = aws_error(exc)
                raise AwsError(code, str(exc), status, sender=status < 500) from exc
            return json_response(result or {}, "application/json")
        raise AwsError("ResourceNotFoundException", f"no IoT operation at {request.method} {request.path}", 404)

    def error_response(self, error: AwsError, request: web.Request, ctx: RequestContext | None) -> web.Response:
        return rest_json_error_response(error)

    async def stop(self) -> None:
        """Close the registry (every change was committed when its request returned)."""
        if self.registry is not None:
            self.registry.close()


def _paged(page: Page, key: str, token_name: str = "nextToken") -> dict[str, Any]:
    out: dict[str, Any] = {key: page.items}
    if page.next_token is not None:
        out[token_name] = page.next_token
    return out


def _marker_page(p: Params) -> dict[str, Any]:
    return {"next_token": p.query.get("marker"), "max_results": p.number("pageSize")}


def _token_page(p: Params) -> dict[str, Any]:
    return {"next_token": p.query.get("nextToken"), "max_results": p.number("maxResults")}


def _group_or_thing(p: Params, kind: str) -> str:
    name = p.body.get(f"{kind}Name") or str(p.body.get(f"{kind}Arn", "")).rpartition("/")[2]
    if not name:
        raise InvalidRequest(f"give {kind}Name or {kind}Arn")
    return str(name)


def add_registry_routes(service: IotControlPlane, registry: Registry, config: Config) -> None:
    """Mount the registry's operations (CreateThing, DescribeCertificate, AttachPolicy, …) on `service`."""
    r = registry
    routes: list[tuple[str, str, Handler]] = [
        # things
        ("POST", "/things/{thingName}", lambda p: r.things.create(
            p.path["thingName"], p.body.get("thingTypeName"),
            (p.body.get("attributePayload") or {}).get("attributes"))),
        ("GET", "/things/{thingName}", lambda p: r.things.describe(p.path["thingName"])),
        ("PATCH", "/things/{thingName}", lambda p: r.things.update(
            p.path["thingName"], p.body.get("thingTypeName"),
            (p.body.get("attributePayload") or {}).get("attributes"),
            bool((p.body.get("attributePayload") or {}).get("merge")), bool(p.body.get("removeThingType")),
            p.body.get("expectedVersion"))),
        ("DELETE", "/things/{thingName}", lambda p: r.things.delete(p.path["thingName"], p.number("expectedVersion"))),
        ("GET", "/things", lambda p: _paged(r.things.list(
            p.query.get("thingTypeName"), p.query.get("attributeName"), p.query.get("attributeValue"),
            p.flag("usePrefixAttributeValue"), **_token_page(p)), "things")),
        # thing types
        ("POST", "/thing-types/{thingTypeName}", lambda p: r.types.create(
            p.path["thingTypeName"], (p.body.get("thingTypeProperties") or {}).get("thingTypeDescription"),
            (p.body.get("thingTypeProperties") or {}).get("searchableAttributes"))),
        ("GET", "/thing-types/{thingTypeName}", lambda p: r.types.describe(p.path["thingTypeName"])),
        ("POST", "/thing-types/{thingTypeName}/deprecate", lambda p: r.types.deprecate(
            p.path["thingTypeName"], bool(p.body.get("undoDeprecate")))),
        ("DELETE", "/thing-types/{thingTypeName}", lambda p: r.types.delete(p.path["thingTypeName"])),
        ("GET", "/thing-types", lambda p: _paged(r.types.list(**_token_page(p)), "thingTypes")),
        # thing groups
        ("PUT", "/thing-groups/addThingToThingGroup", lambda p: r.groups.add_thing(
            _group_or_thing(p, "thingGroup"), _group_or_thing(p, "thing"))),
        ("PUT", "/thing-groups/removeThingFromThingGroup", lambda p: r.groups.remove_thing(
            _group_or_thing(p, "thingGroup"), _group_or_thing(p, "thing"))),
        ("POST", "/thing-groups/{thingGroupName}", lambda p: r.groups.create(
            p.path["thingGroupName"], p.body.get("parentGroupName"),
            (p.body.get("thingGroupProperties") or {}).get("thingGroupDescription"),
            ((p.body.get("thingGroupProperties") or {}).get("attributePayload") or {}).get("attributes"))),
        ("GET", "/thing-groups/{thingGroupName}", lambda p: r.groups.describe(p.path["thingGroupName"])),
        ("PATCH", "/thing-groups/{thingGroupName}", lambda p: {"version": r.groups.update(
            p.path["thingGroupName"], (p.body.get("thingGroupProperties") or {}).get("thingGroupDescription"),
            ((p.body.get("thingGroupProperties") or {}).get("attributePayload") or {}).get("attributes"),
            bool(((p.body.get("thingGroupProperties") or {}).get("attributePayload") or {}).get("merge")),
            p.body.get("expectedVersion"))}),
        ("DELETE", "/thing-groups/{thingGroupName}", lambda p: r.groups.delete(p.path["thingGroupName"])),
        ("GET", "/thing-groups", lambda p: _paged(r.groups.list(
            p.query.get("parentGroup"), p.query.get("namePrefixFilter"), **_token_page(p)), "thingGroups")),
        ("GET", "/thing-groups/{thingGroupName}/things", lambda p: {"things": r.groups.things_in(
            p.path["thingGroupName"], p.flag("recursive"))}),
        ("GET", "/things/{thingName}/thing-groups", lambda p: {"thingGroups": [
            {"groupName": g, "groupArn": r.arns.thing_group(g)} for g in r.groups.groups_of(p.path["thingName"])]}),
        # certificates
        ("POST", "/keys-and-certificate", lambda p: r.certs.create_keys_and_certificate(p.flag("setAsActive"))),
        ("POST", "/certificates", lambda p: r.certs.create_from_csr(
            str(p.body.get("certificateSigningRequest", "")), p.flag("setAsActive"))),
        ("POST", "/certificate/register", lambda p: r.certs.register(
            str(p.body.get("certificatePem", "")), p.body.get("caCertificatePem"),
            p.body.get("status") or ("ACTIVE" if p.flag("setAsActive") else "INACTIVE"))),
        ("GET", "/certificates/{certificateId}", lambda p: {
            "certificateDescription": r.certs.describe(p.path["certificateId"])}),
        ("PUT", "/certificates/{certificateId}", lambda p: r.certs.update_status(
            p.path["certificateId"], p.query.get("newStatus", ""))),
        ("DELETE", "/certificates/{certificateId}", lambda p: r.certs.delete(
            p.path["certificateId"], p.flag("forceDelete"))),
        ("GET", "/certificates", lambda p: _paged(r.certs.list(None, **_marker_page(p)), "certificates", "nextMarker")),
        ("GET", "/certificates-by-ca/{caCertificateId}", lambda p: _paged(r.certs.list(
            p.path["caCertificateId"], **_marker_page(p)), "certificates", "nextMarker")),
        # CA certificates
        ("POST", "/cacertificate", lambda p: r.certs.register_ca(
            str(p.body.get("caCertificate", "")), p.flag("setAsActive"),
            p.flag("allowAutoRegistration") if "allowAutoRegistration" in p.query else None)),
        ("GET", "/cacertificate/{caCertificateId}", lambda p: {
            "certificateDescription": r.certs.describe_ca(p.path["caCertificateId"])}),
        ("PUT", "/cacertificate/{caCertificateId}", lambda p: r.certs.update_ca(
            p.path["caCertificateId"], p.query.get("newStatus"),
            p.query["newAutoRegistrationStatus"] == "ENABLE" if "newAutoRegistrationStatus" in p.query else None)),
        ("DELETE", "/cacertificate/{caCertificateId}", lambda p: r.certs.delete_ca(p.path["caCertificateId"])),
        ("GET", "/cacertificates", lambda p: _paged(r.certs.list_cas(**_marker_page(p)), "certificates", "nextMarker")),
        # certificate <-> thing
        ("PUT", "/things/{thingName}/principals", lambda p: r.certs.attach_thing(
            p.path["thingName"], p.headers.get("x-amzn-principal", ""),
            p.query.get("thingPrincipalType") == "EXCLUSIVE_THING")),
        ("DELETE", "/things/{thingName}/principals", lambda p: r.certs.detach_thing(
            p.path["thingName"], p.headers.get("x-amzn-principal", ""))),
        ("GET", "/things/{thingName}/principals", lambda p: {
            "principals": [o["principal"] for o in r.certs.thing_principals(p.path["thingName"])]}),
        ("GET", "/things/{thingName}/principals-v2", lambda p: {
            "thingPrincipalObjects": r.certs.thing_principals(p.path["thingName"])}),
        ("GET", "/principals/things", lambda p: {
            "things": r.certs.principal_things(p.headers.get("x-amzn-principal", ""))}),
        # policies
        ("POST", "/policies/{policyName}", lambda p: r.policies.create(
            p.path["policyName"], str(p.body.get("policyDocument", "")))),
        ("GET", "/policies/{policyName}", lambda p: r.policies.get(p.path["policyName"])),
        ("DELETE", "/policies/{policyName}", lambda p: r.policies.delete(p.path["policyName"])),
        ("GET", "/policies", lambda p: _paged(r.policies.list(**_marker_page(p)), "policies", "nextMarker")),
        ("POST", "/policies/{policyName}/version", lambda p: r.policies.create_version(
            p.path["policyName"], str(p.body.get("policyDocument", "")), p.flag("setAsDefault"))),
        ("GET", "/policies/{policyName}/version", lambda p: {
            "policyVersions": r.policies.list_versions(p.path["policyName"])}),
        ("GET", "/policies/{policyName}/version/{policyVersionId}", lambda p: r.policies.get_version(
            p.path["policyName"], p.path["policyVersionId"])),
        ("PATCH", "/policies/{policyName}/version/{policyVersionId}", lambda p: r.policies.set_default_version(
            p.path["policyName"], p.path["policyVersionId"])),
        ("DELETE", "/policies/{policyName}/version/{policyVersionId}", lambda p: r.policies.delete_version(
            p.path["policyName"], p.path["policyVersionId"])),
        ("PUT", "/target-policies/{policyName}", lambda p: r.policies.attach(
            p.path["policyName"], str(p.body.get("target", "")))),
        ("POST", "/target-policies/{policyName}", lambda p: r.policies.detach(
            p.path["policyName"], str(p.body.get("target", "")))),
        ("POST", "/attached-policies/{target}", lambda p: {"policies": [
            {"policyName": n, "policyArn": r.arns.policy(n)} for n in r.policies.attached_to(p.path["target"])]}),
        ("POST", "/policy-targets/{policyName}", lambda p: {"targets": r.policies.targets(p.path["policyName"])}),
        # where devices connect
        ("GET", "/endpoint", lambda p: {"endpointAddress": config.mqtt.host if config.mqtt.host not in (
            "0.0.0.0", "::") else "localhost"}),
    ]
    for method, template, handler in routes:
        service.add_route(method, template, handler)


async def create_iot_service(
    home: Path, config: Config, sync: GroupSync, services: dict[str, Any]
) -> IotControlPlane:
    """Service factory (see `gateway.sinks.registry`): the `iot` control plane over this home's registry."""
    registry = await asyncio.to_thread(Registry, home, config)
    service = IotControlPlane(registry)
    add_registry_routes(service, registry, config)
    return service

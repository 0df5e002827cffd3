"""The admin API under ``/_edgeloop/`` on the AWS-compatible API's port: JSON in and out.

Every request is authenticated first (SigV4 with the API credentials, or the bearer token from
``<home>/admin-token``; see `gateway.admin.auth`), then routed. Errors are answered as
``{"error": {"code": "...", "message": "..."}}`` with the matching HTTP status. Endpoints: ``health``,
``metrics``, ``rules…`` (`gateway.admin.rule_views`), ``things…``, ``certificates``, ``policies…``, ``jobs…``
(`gateway.admin.registry_views`). See docs/admin-api.md.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from edgeloop import __version__
from edgeloop.errors import EdgeloopError
from gateway.admin.auth import AdminAuth, ensure_token
from gateway.admin.errors import AdminError, MethodNotAllowed, Unauthenticated
from gateway.admin.registry_views import RegistryViews
from gateway.admin.router import Call, Router
from gateway.admin.rule_views import RuleViews

if TYPE_CHECKING:
    from gateway.app import Gateway

log = logging.getLogger("edgeloop.admin")

ROOT = "/_edgeloop"
PREFIX = ROOT + "/"


def is_admin(request: web.BaseRequest) -> bool:
    """A request for the admin API (its path starts with ``/_edgeloop/``)."""
    path = request.path
    return path == ROOT or path.startswith(PREFIX)


def json_answer(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    text = json.dumps(doc, ensure_ascii=False, default=str)
    return web.Response(text=text, status=status, content_type="application/json", charset="utf-8",
                        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", **(headers or {})})


def error_answer(error: AdminError) -> web.Response:
    headers = {}
    if isinstance(error, Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="edgeloop-admin"'
    if isinstance(error, MethodNotAllowed):
        headers["Allow"] = ", ".join(error.allowed)
    return json_answer(error.to_json(), error.status, headers)


def component_error(exc: EdgeloopError) -> AdminError:
    """A registry or jobs error (they carry ``http_status`` and ``aws_code``) as an admin error."""
    error = AdminError(str(exc), getattr(exc, "aws_code", type(exc).__name__))
    error.status = int(getattr(exc, "http_status", 400))
    return error


class AdminApi:
    """The admin endpoints of one gateway. Components are looked up at request time, so it can be mounted
    before they start."""

    def __init__(self, gateway: Gateway, token: str) -> None:
        self.gateway = gateway
        api = gateway.config.api
        self.auth = AdminAuth(token, {api.access_key: api.secret_key})
        self.started = time.monotonic()
        self.router = Router()
        self.router.add("GET", "health", self.health)
        self.router.add("GET", "metrics", self.metrics)
        RuleViews(gateway).add_to(self.router)
        RegistryViews(gateway).add_to(self.router)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Authenticate, route and answer one request."""
        try:
            caller = await self.auth.admit(request)
            path = request.rel_url.raw_path.removeprefix(ROOT).strip("/")
            handler, params = self.router.resolve(request.method, path)
            result = await handler(Call(params, request.query, caller.body))
        except AdminError as error:
            if isinstance(error, Unauthenticated):
                log.info("event=admin_refused path=%s reason=%s", request.path, error.message)
            return error_answer(error)
        except EdgeloopError as exc:
            return error_answer(component_error(exc))
        except Exception:
            log.exception("event=admin_internal_error method=%s path=%s", request.method, request.path)
            return error_answer(AdminError("the request failed on an internal error; see the gateway log"))
        status, doc = result if isinstance(result, tuple) else (200, result)
        return json_answer(doc, status)

    async def health(self, call: Call) -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "uptime_s": round(time.monotonic() - self.started, 3),
                "components": self.components()}

    def components(self) -> dict[str, Any]:
        """What is running: listeners, the rules dispatcher, device services and sinks."""
        gw = self.gateway
        out: dict[str, Any] = {}
        if gw.mqtt is not None:
            out["mqtt"] = {"listeners": dict(sorted(gw.mqtt.ports.items()))}
        if gw.api is not None:
            out["api"] = {"url": gw.api.url}
        if gw.rules is not None:
            out["rules"] = {"active": len(gw.rules.index), "fileErrors": len(gw.rules.reloader.errors)}
        for name, component in (("shadows", gw.shadows), ("jobs", gw.jobs), ("provisioning", gw.provisioning)):
            if component is not None:
                out[name] = {"running": True}
        out["sinks"] = sorted(gw.services)
        return out

    async def metrics(self, call: Call) -> dict[str, Any]:
        return {name: dict(source()) for name, source in self.gateway.metrics_sources().items()}


def mount_admin(gateway: Gateway) -> AdminApi:
    """Create the admin token when missing and serve the admin API on the gateway's AWS-compatible API."""
    assert gateway.api is not None, "mount the admin API after creating the AWS-compatible API"
    admin = AdminApi(gateway, ensure_token(gateway.home))
    gateway.api.add_route(is_admin, admin.handle)
    return admin

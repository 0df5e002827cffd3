"""Read-only admin views of the registry (things, certificates, policies) and of jobs.

Thin wrappers over `Registry` and `JobsEngine`; both block (SQLite), so every call runs in a worker thread.
Listings page like the ``iot`` control plane: ``?maxResults=&nextToken=``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.admin.errors import BadRequest, Unavailable
from gateway.admin.router import Call, Router
from gateway.identity.registry import Registry
from gateway.identity.store import Page
from gateway.jobs.engine import JobsEngine

if TYPE_CHECKING:
    from gateway.app import Gateway

T = TypeVar("T")


def max_results(query: Mapping[str, str]) -> int | None:
    value = query.get("maxResults")
    if value is None:
        return None
    if not value.isdigit():
        raise BadRequest(f"maxResults must be a whole number, not {value!r}")
    return int(value)


def paged(key: str, page: Page) -> dict[str, Any]:
    out: dict[str, Any] = {key: page.items}
    if page.next_token is not None:
        out["nextToken"] = page.next_token
    return out


class RegistryViews:
    """Things, certificates, policies and jobs of one running gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def add_to(self, router: Router) -> None:
        router.add("GET", "things", self.things)
        router.add("GET", "things/{name}", self.thing)
        router.add("GET", "certificates", self.certificates)
        router.add("GET", "policies", self.policies)
        router.add("GET", "policies/{name}", self.policy)
        router.add("GET", "jobs", self.jobs)
        router.add("GET", "jobs/{id}", self.job)

    async def _registry(self, op: Callable[[Registry], T]) -> T:
        registry = self.gateway.registry
        if registry is None:
            raise Unavailable("the registry is not open (the gateway is starting or stopping)")
        return await asyncio.to_thread(op, registry)

    async def _jobs(self, op: Callable[[JobsEngine], T]) -> T:
        if self.gateway.jobs is None:
            raise Unavailable("the jobs service is not running")
        return await asyncio.to_thread(op, self.gateway.jobs.engine)

    async def things(self, call: Call) -> dict[str, Any]:
        q = call.query
        page = await self._registry(lambda r: r.things.list(
            thing_type=q.get("thingTypeName"), attribute_name=q.get("attributeName"),
            attribute_value=q.get("attributeValue"), next_token=q.get("nextToken"), max_results=max_results(q)))
        return paged("things", page)

    async def thing(self, call: Call) -> dict[str, Any]:
        name = call.path["name"]

        def describe(r: Registry) -> dict[str, Any]:
            thing = r.things.describe(name)
            principals = []
            for p in r.certs.thing_principals(name):
                cert_id = r.arns.parse_principal(p["principal"])
                principals.append({**p, "certificateId": cert_id, "status": r.certs.status(cert_id),
                                   "policies": r.policies.attached_to(p["principal"])})
            return {**thing, "groups": r.groups.groups_of(name), "principals": principals}

        return await self._registry(describe)

    async def certificates(self, call: Call) -> dict[str, Any]:
        q = call.query

        def listing(r: Registry) -> dict[str, Any]:
            page = r.certs.list(next_token=q.get("nextToken"), max_results=max_results(q))
            for item in page.items:
                item["things"] = r.certs.principal_things(item["certificateArn"])
            return paged("certificates", page)

        return await self._registry(listing)

    async def policies(self, call: Call) -> dict[str, Any]:
        q = call.query
        page = await self._registry(lambda r: r.policies.list(q.get("nextToken"), max_results(q)))
        return paged("policies", page)

    async def policy(self, call: Call) -> dict[str, Any]:
        name = call.path["name"]

        def describe(r: Registry) -> dict[str, Any]:
            policy = r.policies.get(name)
            document = json.loads(policy["policyDocument"])
            return {**policy, "policyDocument": document, "targets": r.policies.targets(name)}

        return await self._registry(describe)

    async def jobs(self, call: Call) -> dict[str, Any]:
        q = call.query
        return await self._jobs(lambda e: e.list_jobs(status=q.get("status"), thing_group=q.get("thingGroupName"),
                                                       max_results=max_results(q), next_token=q.get("nextToken")))

    async def job(self, call: Call) -> dict[str, Any]:
        job_id = call.path["id"]

        def describe(e: JobsEngine) -> dict[str, Any]:
            return {**e.describe_job(job_id)["job"], "document": json.loads(e.job_document(job_id)["document"]),
                    "executions": e.executions_for_job(job_id)["executionSummaries"]}

        return await self._jobs(describe)

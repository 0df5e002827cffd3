"""Fleet provisioning by claim: new certificates with ownership tokens, and RegisterThing, which applies a
template to the registry in one transaction (a rejected request changes nothing).

Blocking (SQLite, key generation): call it from worker threads.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from edgeloop.config import Config
from gateway.identity.certificates import DEFAULT_COMMON_NAME
from gateway.identity.errors import IdentityError, NotFoundError
from gateway.identity.registry import Registry
from gateway.provisioning import errors as e
from gateway.provisioning import template as tpl
from gateway.provisioning.errors import ProvisioningRejection, TemplateError
from gateway.provisioning.store import ProvisioningStore

log = logging.getLogger("edgeloop.provisioning")

PENDING = "PENDING_ACTIVATION"


class ProvisioningEngine:
    """The three MQTT operations of fleet provisioning, over the registry and the template store."""

    def __init__(self, store: ProvisioningStore, registry: Registry, config: Config,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.registry = registry
        self.config = config
        self.clock = clock

    def _token_for(self, certificate_id: str) -> str:
        token = secrets.token_urlsafe(48)
        self.store.add_token(token, certificate_id, self.clock() + self.config.provisioning.token_ttl_secs)
        return token

    def create_keys_and_certificate(self) -> dict[str, Any]:
        """A key pair and a PENDING_ACTIVATION certificate from the gateway CA, with its ownership token."""
        issued = self.registry.ca.issue_device(DEFAULT_COMMON_NAME)
        self.registry.certs.register(issued.certificate_pem, status=PENDING)
        return {"certificateId": issued.certificate_id, "certificatePem": issued.certificate_pem,
                "privateKey": issued.private_key_pem,
                "certificateOwnershipToken": self._token_for(issued.certificate_id)}

    def create_from_csr(self, request: dict[str, Any]) -> dict[str, Any]:
        """A PENDING_ACTIVATION certificate for the device's CSR, with its ownership token."""
        csr = request.get("certificateSigningRequest")
        if not isinstance(csr, str) or not csr:
            raise ProvisioningRejection(400, e.INVALID_PAYLOAD, "certificateSigningRequest is required (PEM text)")
        try:
            issued = self.registry.ca.sign_csr(csr)
            self.registry.certs.register(issued.certificate_pem, status=PENDING)
        except IdentityError as exc:
            raise ProvisioningRejection(400, e.INVALID_PAYLOAD, f"invalid certificateSigningRequest: {exc}") from exc
        return {"certificateId": issued.certificate_id, "certificatePem": issued.certificate_pem,
                "certificateOwnershipToken": self._token_for(issued.certificate_id)}

    def register_thing(self, template_name: str, request: dict[str, Any]) -> dict[str, Any]:
        """RegisterThing: apply the template for the certificate the ownership token stands for."""
        token = request.get("certificateOwnershipToken")
        if not isinstance(token, str) or not token:
            raise ProvisioningRejection(400, e.INVALID_PAYLOAD, "certificateOwnershipToken is required")
        parameters = request.get("parameters") or {}
        if not isinstance(parameters, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in parameters.items()):
            raise ProvisioningRejection(400, e.INVALID_PAYLOAD, "parameters must be a map of string to string")
        try:
            template, enabled = self.store.template(template_name)
        except e.ResourceNotFound as exc:
            raise ProvisioningRejection(404, e.NOT_FOUND, str(exc)) from exc
        if not enabled:
            raise ProvisioningRejection(403, e.ACCESS_DENIED, f"provisioning template {template_name} is disabled")
        certificate_id = self.store.token(token, self.clock())
        if certificate_id is None:
            raise ProvisioningRejection(400, e.INVALID_TOKEN, "the certificate ownership token is unknown or expired")
        try:
            plan = tpl.evaluate(template, parameters, certificate_id)
        except TemplateError as exc:
            raise ProvisioningRejection(400, e.INVALID_PARAMETERS, str(exc)) from exc
        try:
            with self.registry.store.transaction():
                self._apply(plan, certificate_id)
        except IdentityError as exc:
            raise ProvisioningRejection(400, e.INVALID_PARAMETERS, f"the template could not be applied: {exc}") from exc
        self.store.drop_token(token)
        log.info("event=thing_provisioned template=%s thing=%s certificate_id=%s", template_name,
                 plan.thing.name if plan.thing else None, certificate_id)
        out: dict[str, Any] = {"deviceConfiguration": {k: v if isinstance(v, str) else json.dumps(v)
                                                       for k, v in plan.device_configuration.items()}}
        if plan.thing is not None:
            out["thingName"] = plan.thing.name
        return out

    def _apply(self, plan: tpl.Plan, certificate_id: str) -> None:
        r = self.registry
        cert_arn = r.arns.cert(certificate_id)
        if plan.thing is not None:
            self._apply_thing(plan.thing, certificate_id)
            r.certs.attach_thing(plan.thing.name, cert_arn)
        for policy in plan.policies:
            name = policy.name or f"{plan.thing.name if plan.thing else certificate_id[:16]}-policy"
            try:
                r.policies.get(name)
            except NotFoundError:
                if policy.document is None:
                    raise ProvisioningRejection(400, e.INVALID_PARAMETERS, f"policy {name} does not exist") from None
                r.policies.create(name, policy.document)
            r.policies.attach(name, cert_arn)
        r.certs.update_status(certificate_id, plan.certificate_status or "ACTIVE")

    def _apply_thing(self, spec: tpl.ThingSpec, certificate_id: str) -> None:
        r = self.registry
        if not r.things.exists(spec.name):
            r.things.create(spec.name, spec.thing_type, spec.attributes)
            for group in spec.groups:
                r.groups.add_thing(group, spec.name)
            return
        owners = [o["principal"] for o in r.certs.thing_principals(spec.name)]
        if any(not owner.endswith(certificate_id) for owner in owners):
            raise ProvisioningRejection(409, e.CONFLICT, f"thing {spec.name} already exists and belongs to "
                                        "another certificate")
        current = r.things.describe(spec.name)
        attributes = spec.overrides.get("AttributePayload", "MERGE")
        if spec.attributes is not None and attributes != "DO_NOTHING":
            if attributes == "FAIL" and spec.attributes != current.get("attributes", {}):
                raise ProvisioningRejection(409, e.CONFLICT, f"thing {spec.name} exists with other attributes")
            r.things.update(spec.name, attributes=spec.attributes, merge=attributes == "MERGE")
        type_rule = spec.overrides.get("ThingTypeName", "REPLACE")
        if spec.thing_type is not None and spec.thing_type != current.get("thingTypeName"):
            if type_rule == "FAIL":
                raise ProvisioningRejection(409, e.CONFLICT, f"thing {spec.name} exists with another thing type")
            if type_rule == "REPLACE":
                r.things.update(spec.name, thing_type=spec.thing_type)
        groups_rule = spec.overrides.get("ThingGroups", "MERGE")
        existing = set(r.groups.groups_of(spec.name))
        if groups_rule == "FAIL" and spec.groups and set(spec.groups) != existing:
            raise ProvisioningRejection(409, e.CONFLICT, f"thing {spec.name} exists in other thing groups")
        if groups_rule == "REPLACE":
            for group in existing - set(spec.groups):
                r.groups.remove_thing(group, spec.name)
        if groups_rule in ("MERGE", "REPLACE"):
            for group in spec.groups:
                r.groups.add_thing(group, spec.name)

    def sweep(self) -> int:
        """Forget expired tokens; their certificates, still PENDING_ACTIVATION, are deleted (as AWS does)."""
        removed = 0
        for token, certificate_id in self.store.expired_tokens(self.clock()):
            try:
                if self.registry.certs.status(certificate_id) == PENDING:
                    self.registry.certs.delete(certificate_id, force=True)
                    removed += 1
            except IdentityError as exc:
                log.warning("event=unclaimed_certificate_not_deleted certificate_id=%s error=%s", certificate_id, exc)
            self.store.drop_token(token)
        if removed:
            log.info("event=unclaimed_certificates_deleted count=%d", removed)
        return removed

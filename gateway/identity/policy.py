"""AWS IoT policy evaluation: `Authorizer.authorize()` and per-connection `AuthorizationSession` caches.

Evaluation follows IAM: a request is implicitly denied unless an Allow statement matches, and any matching
Deny wins. Binding a principal's policies happens once (per principal object, or per session until the
registry generation changes): conditions are evaluated, variables substituted, statements grouped per action
and every action's resource patterns compiled into one Allow and one Deny predicate over the bare resource
name. What names no principal is compiled once per policy set and shared (`policy_binding`). A decision is
then a dict lookup and at most a couple of string checks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from gateway.identity.errors import IdentityError, PolicyError
from gateway.identity.policy_binding import (
    ALLOW,
    IMPLICIT_DENY,
    ActionRules,
    BoundPolicies,
    Decide,
    Decision,
    PolicySetPlan,
)
from gateway.identity.policy_defaults import DEV_ALLOW_ALL_POLICY, default_thing_policy
from gateway.identity.policy_document import (
    ACTION_RESOURCE_TYPES,
    ACTIONS,
    PolicyDocument,
    ResourcePattern,
    Statement,
)
from gateway.identity.policy_glob import STAR, Glob, StrPredicate, compile_globs, strip_prefix
from gateway.identity.policy_principal import Principal

if TYPE_CHECKING:
    from edgeloop.config import AwsSection

__all__ = [
    "ACTIONS",
    "DEV_ALLOW_ALL_POLICY",
    "AuthorizationSession",
    "Authorizer",
    "Decision",
    "PolicyDocument",
    "PolicyError",
    "Principal",
    "Statement",
    "default_thing_policy",
]


class Authorizer:
    """Evaluates policies for one region and account (the ARNs' region and account are checked against them)."""

    def __init__(self, region: str, account_id: str, *, principal_cache_size: int = 1024,
                 plan_cache_size: int = 256) -> None:
        self.region = region
        self.account_id = account_id
        self._principal_cache_size = principal_cache_size
        self._plan_cache_size = plan_cache_size
        self._bound: dict[int, tuple[Principal, Mapping[str, Decide]]] = {}
        self._plans: dict[tuple[int, ...], PolicySetPlan] = {}  # by the ids of the documents the plan keeps alive
        self._plans_lock = threading.Lock()  # principals are bound in worker threads too
        self._scope_matches: dict[tuple[Glob, Glob], bool] = {}

    @classmethod
    def from_config(cls, aws: AwsSection) -> Authorizer:
        """An authorizer for the configured region and account (`Config.aws`)."""
        return cls(aws.region, aws.account_id)

    def authorize(self, principal: Principal, action: str, resource: str) -> Decision:
        """Decide `action` (e.g. "iot:Publish") on a bare resource name: the client id for iot:Connect, the topic
        for Publish/Receive/RetainPublish, the topic filter for Subscribe, the thing name (or `thing/shadow`)
        for the shadow and jobs REST actions, `*` for iot:ListRetainedMessages. Unknown actions are denied."""
        decide = self._rules_for(principal).get(action)
        return IMPLICIT_DENY if decide is None else decide(resource)

    def session(
        self,
        principal: Principal,
        generation: Callable[[], int],
        refresh: Callable[[], Principal] | None = None,
        *,
        renew: Callable[[Principal], Principal] | None = None,
    ) -> AuthorizationSession:
        """A per-connection decision cache, flushed whenever `generation()` changes.

        With `refresh` (or `renew`, which is given the current principal, so that one function serves every
        connection), the session also re-reads the principal then (new policies or attachments apply to the
        live connection); if it raises an identity error (certificate revoked, ...) everything is denied.
        """
        return AuthorizationSession(self, principal, generation, refresh, renew=renew)

    def bind(self, principal: Principal) -> Mapping[str, Decide]:
        """The principal's policies as one decision function per action (what no principal changes is shared)."""
        return self.bind_policies(principal).rules

    def bind_policies(self, principal: Principal) -> BoundPolicies:
        """The principal's policies bound to it: shared by every principal when no statement names the principal
        (no conditions, no `${...}` variables), else the shared part merged with the principal's own."""
        return self.plan(principal.policies).bind(principal, self._add_statement)

    def bind_unshared(self, principal: Principal) -> Mapping[str, Decide]:
        """Compile every statement for this principal alone (the reference `bind_policies` must agree with)."""
        rules: dict[str, ActionRules] = {}
        for document in principal.policies:
            for statement in document.statements:
                self._add_statement(principal, statement, rules)
        return {action: r.compile() for action, r in rules.items()}

    def plan(self, documents: tuple[PolicyDocument, ...]) -> PolicySetPlan:
        """The compiled, principal-independent part of a policy set (cached by the documents' identities:
        the registry's parsed documents are themselves cached by text)."""
        key = tuple(map(id, documents))
        found = self._plans.get(key)
        if found is not None:
            return found
        plan = PolicySetPlan(documents, self._add_statement)
        with self._plans_lock:
            found = self._plans.get(key)
            if found is not None:
                return found
            if len(self._plans) >= self._plan_cache_size:
                del self._plans[next(iter(self._plans))]
            self._plans[key] = plan
        return plan

    def _rules_for(self, principal: Principal) -> Mapping[str, Decide]:
        key = id(principal)
        entry = self._bound.get(key)
        if entry is not None and entry[0] is principal:
            return entry[1]
        bound = self.bind_policies(principal).rules
        with self._plans_lock:
            if len(self._bound) >= self._principal_cache_size:
                del self._bound[next(iter(self._bound))]
            self._bound[key] = (principal, bound)
        return bound

    def _add_statement(
        self, principal: Principal | None, statement: Statement, rules: dict[str, ActionRules]
    ) -> None:
        """Add what `statement` grants or denies `principal` (None: a statement that names no principal)."""
        if not statement.actions or not all(c.evaluate(principal) for c in statement.conditions):  # type: ignore[arg-type]
            return
        by_type: dict[str | None, list[Glob] | None] = {}
        not_resource: dict[str | None, StrPredicate] = {}
        for action in statement.actions:
            resource_type = ACTION_RESOURCE_TYPES[action]
            if resource_type not in by_type:
                by_type[resource_type] = self._name_globs(principal, statement, resource_type)
            globs = by_type[resource_type]
            if globs is None:
                continue
            action_rules = rules.get(action)
            if action_rules is None:
                action_rules = rules[action] = ActionRules()
            if statement.not_resource:
                predicate = not_resource.get(resource_type)
                if predicate is None:
                    predicate = not_resource[resource_type] = compile_globs(globs)
                (action_rules.deny_not if statement.is_deny else action_rules.allow_not).append(predicate)
            else:
                (action_rules.deny if statement.is_deny else action_rules.allow).extend(globs)

    def _name_globs(
        self, principal: Principal | None, statement: Statement, resource_type: str | None
    ) -> list[Glob] | None:
        """The statement's resource patterns as globs over bare names of `resource_type`.

        Unresolved patterns are dropped; for a NotResource statement one unresolved pattern disables it (None).
        """
        globs: list[Glob] = []
        for resource in statement.resources:
            found = self._resource_globs(principal, resource, resource_type)
            if found is None:
                if statement.not_resource:
                    return None
                continue
            globs.extend(found)
        return globs

    def _resource_globs(
        self, principal: Principal | None, resource: ResourcePattern, resource_type: str | None
    ) -> set[Glob] | None:
        if resource.rest is None or resource.region is None or resource.account is None:
            return {(STAR,)}
        region, account, rest = (t.glob(principal) for t in (resource.region, resource.account, resource.rest))
        if region is None or account is None or rest is None:
            return None
        if not self._in_scope(region, account):
            return set()
        return strip_prefix(rest, f"{resource_type}/" if resource_type else "")

    def _in_scope(self, region: Glob, account: Glob) -> bool:
        """Whether an ARN's region and account globs match this authorizer's (memoized: few distinct pairs)."""
        key = (region, account)
        found = self._scope_matches.get(key)
        if found is None:
            found = bool(compile_globs([region])(self.region) and compile_globs([account])(self.account_id))
            if len(self._scope_matches) < 1024:
                self._scope_matches[key] = found
        return found


class AuthorizationSession:
    """Per-connection authorization with a decision cache valid while `generation()` stays the same.

    A session whose policies name no principal uses the shared binding of its policy set, decision cache
    included: it then holds no compiled policy and no decisions of its own."""

    __slots__ = ("_authorizer", "_bound", "_cache", "_generation", "_refresh", "_renew", "_rules", "_seen",
                 "max_entries", "principal", "revoked")  # fmt: skip

    def __init__(
        self,
        authorizer: Authorizer,
        principal: Principal,
        generation: Callable[[], int],
        refresh: Callable[[], Principal] | None = None,
        *,
        renew: Callable[[Principal], Principal] | None = None,
        max_entries: int = 8192,
    ) -> None:
        self._authorizer = authorizer
        self._generation = generation
        self._refresh = refresh
        self._renew = renew
        self.principal = principal
        self.revoked: IdentityError | None = None
        self.max_entries = max_entries
        self._seen = generation()
        self._use(authorizer.bind_policies(principal))

    def _use(self, bound: BoundPolicies) -> None:
        self._bound = bound
        self._rules: Mapping[str, Decide] = bound.rules
        self._cache: dict[str, dict[str, bool]] = bound.decisions

    def allowed(self, action: str, resource: str) -> bool:
        """Whether `action` on the bare `resource` is allowed (see `Authorizer.authorize`)."""
        if self._generation() != self._seen:
            self._rebind()
        try:
            return self._cache[action][resource]
        except KeyError:
            return self._decide_and_store(action, resource)

    def decision(self, action: str, resource: str) -> Decision:
        """The full decision (uncached; for logs and admin tools)."""
        if self._generation() != self._seen:
            self._rebind()
        decide = self._rules.get(action)
        return IMPLICIT_DENY if decide is None else decide(resource)

    def _decide_and_store(self, action: str, resource: str) -> bool:
        decide = self._rules.get(action)
        result = decide is not None and decide(resource) is ALLOW
        bound = self._bound
        if bound.entries >= self.max_entries:
            bound.decisions.clear()
            bound.entries = 0
        by_resource = bound.decisions.get(action)
        if by_resource is None:
            by_resource = bound.decisions[action] = {}
        by_resource[resource] = result
        bound.entries += 1
        return result

    def _rebind(self) -> None:
        self._seen = self._generation()
        if self._refresh is not None or self._renew is not None:
            try:
                self.principal = self._refresh() if self._refresh is not None else self._renew(self.principal)  # type: ignore[misc]
            except IdentityError as exc:
                self.revoked = exc
                self._use(BoundPolicies(NO_RULES))
                return
        self.revoked = None
        self._use(self._authorizer.bind_policies(self.principal))  # a binding of its own comes with an empty cache


NO_RULES: Mapping[str, Decide] = {}

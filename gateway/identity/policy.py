"""AWS IoT policy evaluation: `Authorizer.authorize()` and per-connection `AuthorizationSession` caches.

Evaluation follows IAM: a request is implicitly denied unless an Allow statement matches, and any matching
Deny wins. Binding a principal's policies happens once (per principal object, or per session until the
registry generation changes): conditions are evaluated, variables substituted, statements grouped per action
and every action's resource patterns compiled into one Allow and one Deny predicate over the bare resource
name. A decision is then a dict lookup and at most a couple of string checks.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from gateway.identity.errors import IdentityError, PolicyError
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


class Decision(enum.Enum):
    """Outcome of one authorization request."""

    ALLOW = "allow"
    EXPLICIT_DENY = "explicit-deny"
    IMPLICIT_DENY = "implicit-deny"

    @property
    def allowed(self) -> bool:
        return self is Decision.ALLOW


ALLOW = Decision.ALLOW
EXPLICIT_DENY = Decision.EXPLICIT_DENY
IMPLICIT_DENY = Decision.IMPLICIT_DENY

Decide = Callable[[str], Decision]


class _ActionRules:
    """Resource rules of one action for one principal, while binding."""

    __slots__ = ("allow", "allow_not", "deny", "deny_not")

    def __init__(self) -> None:
        self.allow: list[Glob] = []
        self.deny: list[Glob] = []
        self.allow_not: list[StrPredicate] = []  # NotResource statements: apply when the predicate is false
        self.deny_not: list[StrPredicate] = []

    def compile(self) -> Decide:
        allow, deny = compile_globs(self.allow), compile_globs(self.deny)
        allow_not, deny_not = tuple(self.allow_not), tuple(self.deny_not)
        if not self.deny and not deny_not and not allow_not:
            return lambda name: ALLOW if allow(name) else IMPLICIT_DENY
        if not deny_not and not allow_not:
            return lambda name: EXPLICIT_DENY if deny(name) else ALLOW if allow(name) else IMPLICIT_DENY

        def decide(name: str) -> Decision:
            if deny(name) or any(not p(name) for p in deny_not):
                return EXPLICIT_DENY
            if allow(name) or any(not p(name) for p in allow_not):
                return ALLOW
            return IMPLICIT_DENY

        return decide


class Authorizer:
    """Evaluates policies for one region and account (the ARNs' region and account are checked against them)."""

    def __init__(self, region: str, account_id: str, *, principal_cache_size: int = 1024) -> None:
        self.region = region
        self.account_id = account_id
        self._principal_cache_size = principal_cache_size
        self._bound: dict[int, tuple[Principal, Mapping[str, Decide]]] = {}
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
    ) -> AuthorizationSession:
        """A per-connection decision cache, flushed whenever `generation()` changes.

        With `refresh`, the session also re-reads the principal then (new policies or attachments apply to the
        live connection); if `refresh` raises an identity error (certificate revoked, ...) everything is denied.
        """
        return AuthorizationSession(self, principal, generation, refresh)

    def bind(self, principal: Principal) -> Mapping[str, Decide]:
        """Compile the principal's policies into one decision function per action (no caching)."""
        rules: dict[str, _ActionRules] = {}
        for document in principal.policies:
            for statement in document.statements:
                self._add_statement(principal, statement, rules)
        return {action: r.compile() for action, r in rules.items()}

    def _rules_for(self, principal: Principal) -> Mapping[str, Decide]:
        key = id(principal)
        entry = self._bound.get(key)
        if entry is not None and entry[0] is principal:
            return entry[1]
        bound = self.bind(principal)
        if len(self._bound) >= self._principal_cache_size:
            del self._bound[next(iter(self._bound))]
        self._bound[key] = (principal, bound)
        return bound

    def _add_statement(self, principal: Principal, statement: Statement, rules: dict[str, _ActionRules]) -> None:
        if not statement.actions or not all(c.evaluate(principal) for c in statement.conditions):
            return
        by_type: dict[str | None, list[Glob] | None] = {}
        for action in statement.actions:
            resource_type = ACTION_RESOURCE_TYPES[action]
            if resource_type not in by_type:
                by_type[resource_type] = self._name_globs(principal, statement, resource_type)
            globs = by_type[resource_type]
            if globs is None:
                continue
            action_rules = rules.setdefault(action, _ActionRules())
            if statement.not_resource:
                predicate = compile_globs(globs)
                (action_rules.deny_not if statement.is_deny else action_rules.allow_not).append(predicate)
            else:
                (action_rules.deny if statement.is_deny else action_rules.allow).extend(globs)

    def _name_globs(self, principal: Principal, statement: Statement, resource_type: str | None) -> list[Glob] | None:
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
        self, principal: Principal, resource: ResourcePattern, resource_type: str | None
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
    """Per-connection authorization with a decision cache valid while `generation()` stays the same."""

    __slots__ = ("_authorizer", "_cache", "_entries", "_generation", "_refresh", "_rules", "_seen",
                 "max_entries", "principal", "revoked")  # fmt: skip

    def __init__(
        self,
        authorizer: Authorizer,
        principal: Principal,
        generation: Callable[[], int],
        refresh: Callable[[], Principal] | None = None,
        *,
        max_entries: int = 8192,
    ) -> None:
        self._authorizer = authorizer
        self._generation = generation
        self._refresh = refresh
        self.principal = principal
        self.revoked: IdentityError | None = None
        self.max_entries = max_entries
        self._seen = generation()
        self._rules: Mapping[str, Decide] = authorizer.bind(principal)
        self._cache: dict[str, dict[str, bool]] = {}
        self._entries = 0

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
        if self._entries >= self.max_entries:
            self._cache.clear()
            self._entries = 0
        self._cache.setdefault(action, {})[resource] = result
        self._entries += 1
        return result

    def _rebind(self) -> None:
        self._seen = self._generation()
        self._cache.clear()
        self._entries = 0
        if self._refresh is not None:
            try:
                self.principal = self._refresh()
            except IdentityError as exc:
                self.revoked = exc
                self._rules = {}
                return
        self.revoked = None
        self._rules = self._authorizer.bind(self.principal)

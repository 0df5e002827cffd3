"""Binding a policy set to principals: compile what does not depend on the principal once, share it.

A statement without conditions and without `${...}` variables in its resources (a *static* statement) decides
the same way for every principal, so its resource globs are computed once per policy set (`PolicySetPlan`).
Binding a principal then only evaluates the statements that name it (conditions, variables) and merges them
with the static globs of the actions they touch. A policy set made only of static statements (the development
allow-all policy, most fleet-wide policies) binds to one `BoundPolicies` shared by every principal: its decision
cache is shared too, since its decisions are a pure function of (action, resource).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from gateway.identity.policy_glob import Glob, StrPredicate, compile_globs

if TYPE_CHECKING:
    from gateway.identity.policy_document import PolicyDocument, Statement
    from gateway.identity.policy_principal import Principal


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


class ActionRules:
    """Resource rules of one action, while binding."""

    __slots__ = ("allow", "allow_not", "deny", "deny_not")

    def __init__(self) -> None:
        self.allow: list[Glob] = []
        self.deny: list[Glob] = []
        self.allow_not: list[StrPredicate] = []  # NotResource statements: apply when the predicate is false
        self.deny_not: list[StrPredicate] = []

    def extend(self, other: ActionRules) -> None:
        self.allow.extend(other.allow)
        self.deny.extend(other.deny)
        self.allow_not.extend(other.allow_not)
        self.deny_not.extend(other.deny_not)

    def key(self) -> tuple[frozenset[Glob], frozenset[Glob], tuple[int, ...], tuple[int, ...]]:
        """Equal for rules that decide alike (the NotResource predicates compared by identity)."""
        return (frozenset(self.allow), frozenset(self.deny), tuple(map(id, self.allow_not)),
                tuple(map(id, self.deny_not)))  # fmt: skip

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


def compile_actions(rules: Mapping[str, ActionRules]) -> dict[str, Decide]:
    """One decision function per action; actions whose rules decide alike share one function."""
    compiled: dict[object, Decide] = {}
    out: dict[str, Decide] = {}
    for action, action_rules in rules.items():
        key = action_rules.key()
        decide = compiled.get(key)
        if decide is None:
            decide = compiled[key] = action_rules.compile()
        out[action] = decide
    return out


class BoundPolicies:
    """A policy set bound to a principal (or to every principal, when `shared`): the decision function of each
    action, and a cache of `allowed` results by action and resource (`entries` counts them)."""

    __slots__ = ("decisions", "entries", "rules", "shared")

    def __init__(self, rules: Mapping[str, Decide], shared: bool = False) -> None:
        self.rules = rules
        self.shared = shared
        self.decisions: dict[str, dict[str, bool]] = {}
        self.entries = 0


AddStatement = Callable[["Principal | None", "Statement", dict[str, ActionRules]], None]


def is_static(statement: Statement) -> bool:
    """Whether the statement decides alike for every principal: no conditions, no variables in its resources."""
    if statement.conditions:
        return False
    for resource in statement.resources:
        if resource.rest is None or resource.region is None or resource.account is None:
            continue
        if resource.region.has_variables or resource.account.has_variables or resource.rest.has_variables:
            return False
    return True


class PolicySetPlan:
    """What one authorizer compiled of one policy set (a tuple of documents) before seeing any principal."""

    __slots__ = ("documents", "dynamic", "static_bound", "static_rules")

    def __init__(self, documents: tuple[PolicyDocument, ...], add_statement: AddStatement) -> None:
        self.documents = documents  # kept alive: plans are looked up by the documents' identities
        self.static_rules: dict[str, ActionRules] = {}
        dynamic: list[Statement] = []
        for document in documents:
            for statement in document.statements:
                if is_static(statement):
                    add_statement(None, statement, self.static_rules)
                else:
                    dynamic.append(statement)
        self.dynamic = tuple(dynamic)
        self.static_bound = BoundPolicies(compile_actions(self.static_rules), shared=True)

    def bind(self, principal: Principal, add_statement: AddStatement) -> BoundPolicies:
        """The set bound to `principal`: the shared binding unless a statement about the principal applies."""
        if not self.dynamic:
            return self.static_bound
        rules: dict[str, ActionRules] = {}
        for statement in self.dynamic:
            add_statement(principal, statement, rules)
        if not rules:  # every statement about the principal was dropped (conditions false): decide as the rest
            return self.static_bound
        for action, action_rules in rules.items():
            static = self.static_rules.get(action)
            if static is not None:
                action_rules.extend(static)
        decides = dict(self.static_bound.rules)
        decides.update(compile_actions(rules))
        return BoundPolicies(decides)

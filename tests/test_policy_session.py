"""Per-connection sessions: cached decisions, invalidation on registry generation change, revocation."""

from __future__ import annotations

from dataclasses import replace

from edgeloop.config import AwsSection
from gateway.identity.errors import AuthenticationError
from gateway.identity.policy import Authorizer, Decision, PolicyDocument, Principal
from tests.test_policy_support import ACCOUNT, REGION, allow, deny, policy


class FakeRegistry:
    """A registry stand-in with the two things a session reads: a generation counter and the principal."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal
        self.counter = 0
        self.revoked = False

    def generation(self) -> int:
        return self.counter

    def attach(self, *documents: PolicyDocument) -> None:
        self.principal = replace(self.principal, policies=documents)
        self.counter += 1

    def principal_for(self) -> Principal:
        if self.revoked:
            raise AuthenticationError("revoked", "certificate is revoked")
        return self.principal


def make_session() -> tuple[FakeRegistry, Authorizer]:
    registry = FakeRegistry(Principal(client_id="c1", policies=(policy(allow("iot:Publish", "topic/a/*")),)))
    return registry, Authorizer(REGION, ACCOUNT)


def test_session_decisions_match_authorize_and_repeat() -> None:
    registry, auth = make_session()
    session = auth.session(registry.principal, registry.generation)
    for _ in range(3):
        assert session.allowed("iot:Publish", "a/1")
        assert not session.allowed("iot:Publish", "b/1")
        assert not session.allowed("iot:Unknown", "a/1")
    assert session.decision("iot:Publish", "b/1") is Decision.IMPLICIT_DENY
    assert session.principal is registry.principal


def test_generation_change_rebinds_with_refreshed_principal() -> None:
    registry, auth = make_session()
    session = auth.session(registry.principal, registry.generation, registry.principal_for)
    assert session.allowed("iot:Publish", "a/1") and not session.allowed("iot:Publish", "b/1")
    registry.attach(policy(allow("iot:Publish", "topic/*"), deny("iot:Publish", "topic/a/*")))
    assert not session.allowed("iot:Publish", "a/1")
    assert session.decision("iot:Publish", "a/1") is Decision.EXPLICIT_DENY
    assert session.allowed("iot:Publish", "b/1")
    assert session.principal is registry.principal


def test_decisions_stay_cached_until_the_generation_moves() -> None:
    registry, auth = make_session()
    session = auth.session(registry.principal, registry.generation, registry.principal_for)
    assert session.allowed("iot:Publish", "a/1")
    registry.principal = replace(registry.principal, policies=())  # changed without a generation bump
    assert session.allowed("iot:Publish", "a/1")
    registry.counter += 1
    assert not session.allowed("iot:Publish", "a/1")


def test_revoked_principal_is_denied_everything_until_it_refreshes_again() -> None:
    registry, auth = make_session()
    session = auth.session(registry.principal, registry.generation, registry.principal_for)
    assert session.allowed("iot:Publish", "a/1")
    registry.revoked = True
    registry.counter += 1
    assert not session.allowed("iot:Publish", "a/1")
    assert isinstance(session.revoked, AuthenticationError) and session.revoked.reason == "revoked"
    registry.revoked = False
    registry.counter += 1
    assert session.allowed("iot:Publish", "a/1") and session.revoked is None


def test_cache_bound_keeps_decisions_correct() -> None:
    registry, auth = make_session()
    session = auth.session(registry.principal, registry.generation)
    session.max_entries = 16
    for i in range(100):
        assert session.allowed("iot:Publish", f"a/{i}")
        assert not session.allowed("iot:Publish", f"b/{i}")


def test_authorize_principal_cache_never_confuses_principals() -> None:
    auth = Authorizer(REGION, ACCOUNT, principal_cache_size=2)
    for i in range(20):
        p = Principal(client_id=f"c{i}", policies=(policy(allow("iot:Publish", "topic/${iot:ClientId}")),))
        assert auth.authorize(p, "iot:Publish", f"c{i}").allowed
        assert not auth.authorize(p, "iot:Publish", f"c{i - 1}").allowed


def test_authorizer_from_config_uses_the_configured_account() -> None:
    auth = Authorizer.from_config(AwsSection(region="eu-central-1", account_id="111122223333"))
    grant = allow("iot:Connect", "arn:aws:iot:eu-central-1:111122223333:client/c")
    p = Principal(client_id="c", policies=(policy(grant),))
    assert auth.authorize(p, "iot:Connect", "c").allowed
    assert not Authorizer(REGION, ACCOUNT).authorize(p, "iot:Connect", "c").allowed

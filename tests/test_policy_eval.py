"""Policy evaluation against documented AWS IoT / IAM behaviour: effects, wildcards, ARNs, variables."""

from __future__ import annotations

import pytest

from gateway.identity.policy import Decision, PolicyDocument, Principal
from tests.test_policy_support import ACCOUNT, allow, authorizer, deny, policy, principal

AUTH = authorizer()


def decide(p: Principal, action: str, resource: str) -> Decision:
    return AUTH.authorize(p, action, resource)


# --- effects ---------------------------------------------------------------------------------------------


def test_default_is_implicit_deny() -> None:
    assert decide(Principal(client_id="c"), "iot:Connect", "c") is Decision.IMPLICIT_DENY
    assert not Decision.IMPLICIT_DENY.allowed and not Decision.EXPLICIT_DENY.allowed and Decision.ALLOW.allowed


def test_explicit_deny_wins_whatever_the_order() -> None:
    for statements in (
        (allow("iot:Publish", "topic/*"), deny("iot:Publish", "topic/secret/*")),
        (deny("iot:Publish", "topic/secret/*"), allow("iot:Publish", "topic/*")),
    ):
        p = principal(*statements)
        assert decide(p, "iot:Publish", "open/x") is Decision.ALLOW
        assert decide(p, "iot:Publish", "secret/x") is Decision.EXPLICIT_DENY


def test_group_policies_union_and_deny_across_documents() -> None:
    cert_policy = policy(allow("iot:Publish", "topic/a/*"))
    group_policy = policy(allow("iot:Publish", "topic/b/*"), deny("iot:Publish", "topic/a/locked"))
    p = Principal(client_id="c", policies=(cert_policy, group_policy))
    assert decide(p, "iot:Publish", "a/x").allowed
    assert decide(p, "iot:Publish", "b/x").allowed
    assert decide(p, "iot:Publish", "a/locked") is Decision.EXPLICIT_DENY
    assert decide(p, "iot:Publish", "c/x") is Decision.IMPLICIT_DENY


def test_actions_are_distinct_and_wildcards_expand() -> None:
    p = principal(allow("iot:Publish", "topic/t"))
    assert decide(p, "iot:Publish", "t").allowed
    for other in ("iot:Receive", "iot:RetainPublish", "iot:Subscribe", "iot:Connect"):
        assert decide(p, other, "t") is Decision.IMPLICIT_DENY
    p = principal(allow("iot:*", "*"))
    assert all(decide(p, a, "t").allowed for a in ("iot:Publish", "iot:Receive", "iot:Connect", "iot:Subscribe"))
    p = principal(allow("iot:Re*", "*"))
    assert decide(p, "iot:Receive", "t").allowed and decide(p, "iot:RetainPublish", "t").allowed
    assert not decide(p, "iot:Publish", "t").allowed
    p = principal(allow("IOT:publish", "*"))  # action names are case-insensitive, as in IAM
    assert decide(p, "iot:Publish", "t").allowed


def test_unknown_action_at_request_time_is_denied() -> None:
    assert decide(principal(allow("iot:*", "*")), "iot:Teleport", "x") is Decision.IMPLICIT_DENY


def test_not_action_and_not_resource() -> None:
    p = principal({"Effect": "Allow", "NotAction": "iot:Connect", "Resource": "*"})
    assert decide(p, "iot:Publish", "t").allowed
    assert decide(p, "iot:Connect", "c") is Decision.IMPLICIT_DENY
    p = principal(
        allow("iot:Publish", "*"),
        {"Effect": "Deny", "Action": "iot:Publish", "NotResource": "arn:aws:iot:*:*:topic/public/*"},
    )
    assert decide(p, "iot:Publish", "public/x").allowed
    assert decide(p, "iot:Publish", "private/x") is Decision.EXPLICIT_DENY
    p = principal({"Effect": "Allow", "Action": "iot:Subscribe", "NotResource": "arn:aws:iot:*:*:topicfilter/#"})
    assert decide(p, "iot:Subscribe", "a/b").allowed
    assert not decide(p, "iot:Subscribe", "#").allowed


# --- resources and wildcards -----------------------------------------------------------------------------


def test_star_spans_levels_and_question_mark_is_one_character() -> None:
    p = principal(allow("iot:Publish", ["topic/a/*", "topic/d?v"]))
    assert decide(p, "iot:Publish", "a/b/c/d").allowed
    assert decide(p, "iot:Publish", "a/").allowed
    assert not decide(p, "iot:Publish", "a").allowed
    assert decide(p, "iot:Publish", "dev").allowed
    assert not decide(p, "iot:Publish", "deev").allowed


def test_mqtt_wildcards_in_policies_are_literal() -> None:
    p = principal(allow("iot:Subscribe", ["topicfilter/a/+/b", "topicfilter/s/#"]))
    assert decide(p, "iot:Subscribe", "a/+/b").allowed
    assert not decide(p, "iot:Subscribe", "a/x/b").allowed
    assert decide(p, "iot:Subscribe", "s/#").allowed
    assert not decide(p, "iot:Subscribe", "s/x").allowed
    glob_policy = principal(allow("iot:Subscribe", "topicfilter/a/*"))
    assert decide(glob_policy, "iot:Subscribe", "a/+/b").allowed
    assert decide(glob_policy, "iot:Subscribe", "a/#").allowed


def test_topic_and_topicfilter_resources_are_separate() -> None:
    p = principal(allow(["iot:Publish", "iot:Subscribe"], "topic/x/*"))
    assert decide(p, "iot:Publish", "x/1").allowed
    assert not decide(p, "iot:Subscribe", "x/1").allowed


def test_region_and_account_are_checked_and_globbable() -> None:
    cases = {
        "arn:aws:iot:us-east-1:123456789012:topic/t": True,
        "arn:aws:iot:eu-west-1:123456789012:topic/t": False,
        "arn:aws:iot:us-east-1:999999999999:topic/t": False,
        "arn:aws:iot:us-*:*:topic/t": True,
        "arn:aws:iot:*:12345678901?:topic/t": True,
        "arn:aws:iot:*:*:*": True,
        "arn:aws:iot:*:*:top*": True,
        "arn:aws:iot:*:*:thing/*": False,
    }
    for arn, expected in cases.items():
        p = principal(allow("iot:Publish", arn))
        assert decide(p, "iot:Publish", "t").allowed is expected, arn


def test_rest_actions_use_thing_and_star_resources() -> None:
    p = principal(allow(["iot:GetThingShadow", "iot:ListRetainedMessages"], "thing/lamp"))
    assert decide(p, "iot:GetThingShadow", "lamp").allowed
    assert not decide(p, "iot:GetThingShadow", "lamp/named").allowed
    assert not decide(p, "iot:ListRetainedMessages", "*").allowed
    p = principal(allow("iot:ListRetainedMessages", "*"))
    assert decide(p, "iot:ListRetainedMessages", "*").allowed


# --- policy variables ------------------------------------------------------------------------------------

CERT_FIELDS = {
    "certificate_id": "ab" * 32,
    "subject": {"CommonName": ("sensor-7",), "OrganizationalUnit": ("ou1", "ou2"), "Organization": ("acme",)},
    "issuer": {"CommonName": ("Edge CA",), "Country": ("DE",)},
    "subject_alt_names": {"DNSName": ("a.example", "b.example"), "IPAddress": ("10.0.0.7",)},
    "issuer_alt_names": {"UniformResourceIdentifier": ("urn:ca",)},
    "serial_number": "10525622389124227206",
    "source_ip": "192.168.1.20",
}


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        ("iot:ClientId", "dev-1"),
        ("iot:CertificateId", "ab" * 32),
        ("iot:Connection.Thing.ThingName", "dev-1"),
        ("iot:Connection.Thing.ThingTypeName", "sensor"),
        ("iot:Connection.Thing.Attributes[floor]", "3"),
        ("iot:Connection.Thing.IsAttached", "true"),
        ("iot:Certificate.Subject.CommonName", "sensor-7"),
        ("iot:Certificate.Subject.Organization", "acme"),
        ("iot:Certificate.Subject.OrganizationalUnit", "ou1"),
        ("iot:Certificate.Subject.OrganizationalUnit.2", "ou2"),
        ("iot:Certificate.Issuer.CommonName", "Edge CA"),
        ("iot:Certificate.Issuer.Country.1", "DE"),
        ("iot:Certificate.Subject.AlternativeName.DNSName", "a.example"),
        ("iot:Certificate.Subject.AlternativeName.DNSName.2", "b.example"),
        ("iot:Certificate.Subject.AlternativeName.IPAddress", "10.0.0.7"),
        ("iot:Certificate.Issuer.AlternativeName.UniformResourceIdentifier", "urn:ca"),
        ("iot:Certificate.SerialNumber", "10525622389124227206"),
        ("aws:SourceIp", "192.168.1.20"),
    ],
)
def test_each_variable_substitutes(variable: str, expected: str) -> None:
    p = principal(
        allow("iot:Publish", f"topic/v/${{{variable}}}/*"),
        thing_name="dev-1",
        thing_type="sensor",
        thing_attributes={"floor": "3"},
        is_attached=True,
        **CERT_FIELDS,
    )
    assert decide(p, "iot:Publish", f"v/{expected}/x").allowed
    assert not decide(p, "iot:Publish", f"v/{expected}-other/x").allowed


@pytest.mark.parametrize(
    "variable",
    [
        "iot:Connection.Thing.ThingName",
        "iot:Connection.Thing.ThingTypeName",
        "iot:Connection.Thing.Attributes[missing]",
        "iot:CertificateId",
        "iot:Certificate.Subject.CommonName",
        "iot:Certificate.Subject.OrganizationalUnit.3",
        "iot:Certificate.Issuer.AlternativeName.DNSName",
        "iot:Certificate.SerialNumber",
        "aws:SourceIp",
    ],
)
def test_unresolved_variable_matches_nothing_neither_allow_nor_deny(variable: str) -> None:
    p = principal(
        allow("iot:Publish", ["topic/open", f"topic/v/${{{variable}}}"]),
        deny("iot:Publish", f"topic/d/${{{variable}}}*"),
        allow("iot:Publish", "topic/d/*"),
        subject={"OrganizationalUnit": ("a", "b")},
    )
    assert decide(p, "iot:Publish", "open").allowed
    assert not decide(p, "iot:Publish", f"v/${{{variable}}}").allowed
    assert not decide(p, "iot:Publish", "v/").allowed
    assert decide(p, "iot:Publish", "d/anything").allowed  # the Deny statement does not apply


def test_substituted_values_are_literal_not_wildcards() -> None:
    p = principal(allow("iot:Publish", "topic/c/${iot:ClientId}"), client_id="a*")
    assert decide(p, "iot:Publish", "c/a*").allowed
    assert not decide(p, "iot:Publish", "c/abc").allowed
    p = principal(allow("iot:Connect", "client/${iot:ClientId}"), client_id="+")
    assert decide(p, "iot:Connect", "+").allowed


def test_certificate_values_with_wildcard_characters_or_too_long_are_not_substituted() -> None:
    for common_name in ("dev+1", "dev#", "a*b", "x?", "$x", "n" * 1025):
        p = principal(allow("iot:Publish", "topic/cn/${iot:Certificate.Subject.CommonName}"),
                      subject={"CommonName": (common_name,)})  # fmt: skip
        assert not decide(p, "iot:Publish", f"cn/{common_name}").allowed
    p = principal(allow("iot:Publish", "topic/cn/${iot:Certificate.Subject.CommonName}"),
                  subject={"CommonName": ("n" * 1024,)})  # fmt: skip
    assert decide(p, "iot:Publish", "cn/" + "n" * 1024).allowed


def test_only_five_certificate_values_count() -> None:
    values = tuple(f"ou{i}" for i in range(1, 8))
    p = principal(allow("iot:Publish", ["topic/${iot:Certificate.Subject.OrganizationalUnit.5}",
                                        "topic/${iot:Certificate.Subject.OrganizationalUnit.6}"]),
                  subject={"OrganizationalUnit": values})  # fmt: skip
    assert decide(p, "iot:Publish", "ou5").allowed
    assert not decide(p, "iot:Publish", "ou6").allowed


def test_special_character_variables() -> None:
    p = principal(allow("iot:Publish", ["topic/star/${*}", "topic/q/${?}", "topic/dollar/${$}{x}"]))
    assert decide(p, "iot:Publish", "star/*").allowed
    assert not decide(p, "iot:Publish", "star/anything").allowed
    assert decide(p, "iot:Publish", "q/?").allowed
    assert not decide(p, "iot:Publish", "q/a").allowed
    assert decide(p, "iot:Publish", "dollar/${x}").allowed


def test_version_2008_takes_variables_literally() -> None:
    doc = PolicyDocument.parse({"Version": "2008-10-17", "Statement": allow("iot:Publish", "topic/${iot:ClientId}")})
    p = Principal(client_id="c1", policies=(doc,))
    assert decide(p, "iot:Publish", "${iot:ClientId}").allowed
    assert not decide(p, "iot:Publish", "c1").allowed


def test_thing_variables_when_client_id_is_the_thing() -> None:
    doc = policy(
        allow("iot:Connect", "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"),
        allow("iot:Publish", f"arn:aws:iot:*:{ACCOUNT}:topic/$aws/things/${{iot:Connection.Thing.ThingName}}/*"),
    )
    thing = Principal(client_id="lamp", thing_name="lamp", is_attached=True, policies=(doc,))
    assert decide(thing, "iot:Connect", "lamp").allowed
    assert decide(thing, "iot:Publish", "$aws/things/lamp/shadow/update").allowed
    assert not decide(thing, "iot:Publish", "$aws/things/other/shadow/update").allowed
    stranger = Principal(client_id="other", policies=(doc,))
    assert not decide(stranger, "iot:Connect", "other").allowed

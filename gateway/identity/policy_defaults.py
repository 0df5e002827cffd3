"""Ready-made policy documents: the default per-thing policy and the development allow-all policy."""

from __future__ import annotations

import json

from gateway.identity.policy_glob import glob_text, literal

_ARN = "arn:aws:iot:*:*:"

DEV_ALLOW_ALL_POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}
)
"""Allows every action on every resource; only for the explicit development principal of plain MQTT."""


def thing_topic_prefixes(thing_name: str) -> tuple[str, ...]:
    """Policy patterns (already escaped) of the topic trees the default policy grants to `thing_name`."""
    name = glob_text(literal(thing_name))
    return (
        f"things/{name}/*",
        f"$aws/things/{name}/shadow/*",
        f"$aws/things/{name}/jobs/*",
        "$aws/certificates/create/*",
        "$aws/certificates/create-from-csr/*",
        "$aws/provisioning-templates/*/provision/*",
    )


def default_thing_policy(thing_name: str) -> str:
    """JSON text of the default policy of a thing.

    It allows connecting with the thing's name as client id; publishing, receiving and subscribing on
    `things/<name>/...`, the thing's classic and named shadow topics, its jobs topics and the fleet-provisioning
    topics; and nothing else. Subscribe grants cover filters under those trees, including literal MQTT
    wildcards such as `$aws/things/<name>/shadow/get/+` (in a policy `*` spans `/` and `+`/`#` are literal).
    Names are escaped (`${*}`, `${?}`, `${$}`) so that no thing name acts as a wildcard.
    """
    name = glob_text(literal(thing_name))
    prefixes = thing_topic_prefixes(thing_name)
    statements = [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{_ARN}client/{name}"},
        {
            "Effect": "Allow",
            "Action": ["iot:Publish", "iot:Receive"],
            "Resource": [f"{_ARN}topic/{p}" for p in prefixes],
        },
        {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": [f"{_ARN}topicfilter/{p}" for p in prefixes]},
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, indent=2)

"""Authorization decisions per second for a realistic device policy set, on one core.

The principal is a thing connecting as itself, with the default thing policy (certificate policy) and a
thing-group policy holding a conditional Allow, a Deny and certificate-variable resources. The request mix is
what a device connection produces: telemetry publishes, shadow and jobs traffic, deliveries, subscriptions,
and some denied requests (another thing's topics, the group's Deny).

    .venv/bin/python bench/policy.py [--seconds 1.0] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from gateway.identity.policy import Authorizer, PolicyDocument, Principal, default_thing_policy

REGION = "us-east-1"
ACCOUNT = "123456789012"
THING = "sensor-0042"

GROUP_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["iot:Publish", "iot:Receive"],
            "Resource": [
                "arn:aws:iot:*:*:topic/fleet/${iot:Connection.Thing.Attributes[site]}/*",
                "arn:aws:iot:*:*:topic/org/${iot:Certificate.Subject.Organization}/${iot:ClientId}/*",
            ],
            "Condition": {
                "Bool": {"iot:Connection.Thing.IsAttached": "true"},
                "StringLike": {"iot:Connection.Thing.ThingTypeName": "sensor*"},
            },
        },
        {
            "Effect": "Allow",
            "Action": "iot:Subscribe",
            "Resource": "arn:aws:iot:*:*:topicfilter/fleet/${iot:Connection.Thing.Attributes[site]}/*",
            "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16"]}},
        },
        {
            "Effect": "Deny",
            "Action": ["iot:Publish", "iot:Subscribe"],
            "Resource": [
                "arn:aws:iot:*:*:topic/fleet/*/admin/*",
                "arn:aws:iot:*:*:topicfilter/fleet/*/admin/*",
                "arn:aws:iot:*:*:topic/things/${iot:ClientId}/firmware/?",
            ],
        },
    ],
}

REQUESTS = [
    ("iot:Connect", THING),
    ("iot:Publish", f"things/{THING}/telemetry"),
    ("iot:Publish", f"things/{THING}/telemetry/temp"),
    ("iot:Publish", f"$aws/things/{THING}/shadow/update"),
    ("iot:Publish", f"$aws/things/{THING}/shadow/name/config/get"),
    ("iot:Publish", f"$aws/things/{THING}/jobs/start-next"),
    ("iot:Publish", "fleet/berlin/status"),
    ("iot:Publish", f"org/acme/{THING}/events"),
    ("iot:Publish", "fleet/berlin/admin/reboot"),  # group Deny
    ("iot:Publish", f"things/{THING}/firmware/x"),  # group Deny with a variable
    ("iot:Publish", "things/sensor-0043/telemetry"),  # another thing
    ("iot:Receive", f"$aws/things/{THING}/shadow/update/accepted"),
    ("iot:Receive", f"$aws/things/{THING}/shadow/update/delta"),
    ("iot:Receive", f"$aws/things/{THING}/jobs/notify-next"),
    ("iot:Receive", "fleet/berlin/broadcast"),
    ("iot:Receive", "$aws/things/sensor-0043/shadow/update/delta"),  # another thing
    ("iot:Subscribe", f"$aws/things/{THING}/shadow/get/+"),
    ("iot:Subscribe", f"$aws/things/{THING}/jobs/notify-next"),
    ("iot:Subscribe", "fleet/berlin/#"),
    ("iot:Subscribe", "fleet/berlin/admin/#"),  # group Deny
    ("iot:Subscribe", "#"),
    ("iot:RetainPublish", f"things/{THING}/state"),
]


def make_principal() -> Principal:
    return Principal(
        client_id=THING,
        certificate_id="ab" * 32,
        thing_name=THING,
        thing_type="sensor-v2",
        thing_attributes={"site": "berlin", "floor": "3"},
        is_attached=True,
        subject={"CommonName": (THING,), "Organization": ("acme",)},
        issuer={"CommonName": ("edgeloop CA",)},
        serial_number="123456789",
        source_ip="10.20.30.40",
        policies=(PolicyDocument.parse(default_thing_policy(THING)), PolicyDocument.parse(GROUP_POLICY)),
    )


def rate(run: Callable[[int], int], seconds: float, repeat: int) -> float:
    """Best-of-`repeat` operations per second; `run(n)` performs n rounds and returns the operation count."""
    rounds = 1
    while True:  # calibrate so that one measurement lasts about `seconds`
        start = time.perf_counter()
        run(rounds)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / 10:
            rounds = max(1, int(rounds * seconds / elapsed))
            break
        rounds *= 4
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        ops = run(rounds)
        best = max(best, ops / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=1.0, help="duration of one measurement")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per row (best is reported)")
    args = parser.parse_args()

    principal = make_principal()
    authorizer = Authorizer(REGION, ACCOUNT)
    generation = 7
    session = authorizer.session(principal, lambda: generation)
    requests = REQUESTS
    allowed = sum(session.allowed(a, r) for a, r in requests)
    distinct = [(a, f"{r}/{i}") for i in range(2000) for a, r in requests if a != "iot:Connect"]
    group_text = json.dumps(GROUP_POLICY)

    def cached(n: int) -> int:
        check = session.allowed
        for _ in range(n):
            for action, resource in requests:
                check(action, resource)
        return n * len(requests)

    def uncached(n: int) -> int:
        authorize = authorizer.authorize
        for _ in range(n):
            for action, resource in distinct:
                authorize(principal, action, resource)
        return n * len(distinct)

    def session_misses(n: int) -> int:
        for _ in range(n):
            fresh = authorizer.session(principal, lambda: generation)
            check = fresh.allowed
            for action, resource in distinct:
                check(action, resource)
        return n * (len(distinct) + 1)

    def bind(n: int) -> int:
        for _ in range(n):
            authorizer.bind(principal)
        return n

    def parse(n: int) -> int:
        for _ in range(n):
            PolicyDocument.parse(json.loads(group_text))
        return n

    rows = [
        ("cached: session.allowed, repeated requests", cached),
        ("uncached: Authorizer.authorize, distinct resources", uncached),
        ("session cache misses (decide + store)", session_misses),
        ("bind a principal (conditions, variables, compile)", bind),
        ("parse the group policy (JSON to document)", parse),
    ]
    print(f"policy set: default thing policy + group policy ({len(GROUP_POLICY['Statement'])} statements, "
          f"Deny + conditions); {len(requests)} request kinds, {allowed} allowed")  # fmt: skip
    print(f"{'measurement':<54} {'per second':>14}")
    print("-" * 69)
    for label, run in rows:
        print(f"{label:<54} {rate(run, args.seconds, args.repeat):>14,.0f}")


if __name__ == "__main__":
    main()

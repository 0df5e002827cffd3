"""The effective configuration: embedded defaults, overridden by `edgeloop.toml`, then by CLI flags.

Every key has a default. Each component owns one section (a dataclass below); unknown keys and wrong
types are rejected with the key's full dotted name so a typo never goes unnoticed.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeloop.errors import ConfigError

CONFIG_FILE = "edgeloop.toml"


@dataclass
class AwsSection:
    """Identity of the emulated AWS account: used in ARNs, policies and the AWS-compatible API."""

    region: str = "us-east-1"
    account_id: str = "000000000000"


@dataclass
class PkiSection:
    """Certificate authority and certificate choices."""

    key_type: str = "ec"  # "ec" (ECDSA P-256) or "rsa" (RSA-2048)
    ca_common_name: str = "edgeloop root CA"
    ca_validity_days: int = 3650
    server_validity_days: int = 825
    device_validity_days: int = 3650
    # Extra SANs for the server certificate, beyond localhost, 127.0.0.1, ::1 and the host's names/addresses.
    server_sans: list[str] = field(default_factory=list)
    include_host_addresses: bool = True
    # Bring-your-own-CA certificates seen on first contact are registered PENDING_ACTIVATION (JITR-like).
    auto_register: bool = False


@dataclass
class MqttSection:
    """Device gateway listeners and MQTT limits (AWS IoT's where AWS has one)."""

    host: str = "0.0.0.0"
    port: int = 8883  # MQTT over TLS, client certificate required
    https_port: int = 8443  # TLS with ALPN: x-amzn-mqtt-ca -> MQTT; http/1.1 -> WebSocket /mqtt and POST /topics
    dev: bool = False  # plain MQTT on dev_port, bound to 127.0.0.1 only
    dev_port: int = 1883
    dev_policy: str = "dev-allow-all"  # policy applied to the dev principal
    max_payload_bytes: int = 131072
    max_topic_bytes: int = 256
    max_topic_levels: int = 8
    max_client_id_bytes: int = 128
    max_filters_per_subscribe: int = 8
    max_subscriptions_per_connection: int = 50
    max_inflight: int = 100
    topic_alias_maximum: int = 32  # v5 topic aliases accepted per connection (0 disables)
    max_queued_messages: int = 1000  # per offline/slow session, QoS 1/2
    max_qos0_buffer_bytes: int = 1048576  # per connection; QoS 0 past this is dropped and counted
    keepalive_min_secs: int = 0
    keepalive_max_secs: int = 1200
    connect_timeout_secs: float = 10.0
    max_session_expiry_secs: int = 3600
    retained_enabled: bool = True
    sys_interval_secs: float = 10.0
    identity_recheck_secs: float = 1.0  # how often live connections notice registry changes (revocation)
    tls_session_tickets: int = 0  # TLS 1.3 tickets per handshake; each costs server CPU, few devices resume
    tls_handshake_timeout_secs: float = 10.0  # a TLS handshake not done by then is aborted and counted
    # MQTT over WebSocket on https_port signed with SigV4 (api.access_key/secret_key), as the AWS IoT SDKs'
    # `websockets_with_default_aws_signing` do. True = on when allowed: the API secret is not the built-in
    # default, or the listener is bound to loopback only. False = off, and https_port requires a certificate.
    sigv4_websocket: bool = True
    sigv4_policy: str = ""  # IoT policy of SigV4 connections; empty = built-in allow-all


@dataclass
class ApiSection:
    """The AWS-compatible HTTP API (Kinesis, Firehose, SQS, S3, IoT data plane) and the admin API."""

    host: str = "127.0.0.1"
    port: int = 4566
    access_key: str = "test"
    secret_key: str = "test"


@dataclass
class DurabilitySection:
    """When acknowledged data reaches the disk."""

    fsync: str = "always"  # "always" (group commit before ack), "interval", "never"
    interval_ms: int = 50


@dataclass
class ShadowSection:
    """Device shadows: AWS IoT's document limits and request throttling."""

    max_state_bytes: int = 8192  # desired + reported as compact JSON, metadata excluded (413 beyond)
    max_depth: int = 6  # nesting levels inside desired or reported (400 beyond)
    max_inflight_per_connection: int = 10  # MQTT requests in flight per connection (429 beyond)


@dataclass
class KinesisSection:
    """Emulated Kinesis Data Streams: storage and AWS's per-shard limits (off by default)."""

    enforce_limits: bool = False  # per-shard throughput limits -> ProvisionedThroughputExceededException
    write_bytes_per_sec: int = 1048576
    write_records_per_sec: int = 1000
    read_bytes_per_sec: int = 2097152
    read_calls_per_sec: int = 5
    shard_limit: int = 500  # open shards per account (LimitExceededException beyond)
    segment_bytes: int = 67108864  # a shard's segment file rolls over past this size
    iterator_ttl_secs: float = 300.0
    subscription_secs: float = 300.0  # SubscribeToShard connection lifetime


@dataclass
class SqsSection:
    """Emulated SQS: housekeeping and AWS's rate rules."""

    purge_cooldown_secs: float = 60.0  # AWS allows one PurgeQueue per queue per 60 s (PurgeQueueInProgress)
    housekeeping_interval_secs: float = 1.0  # retention expiry and dedup-window cleanup
    compact_min_records: int = 10000  # a queue's log is compacted past this many records (and 4x live messages)


@dataclass
class RulesSection:
    """The rules dispatcher: rule files, the durable journal, retries and remote endpoints."""

    enabled: bool = True
    reload_interval_secs: float = 1.0  # how often <home>/rules/*.json is scanned for changes
    journal_fsync: str = ""  # "always", "interval", "never"; empty = durability.fsync
    journal_segment_bytes: int = 16777216  # a journal segment rolls over past this size
    checkpoint_interval_ms: int = 100  # how often the dispatched watermark is written
    max_attempts: int = 8  # per action, then errorAction / dead-letter
    backoff_base_ms: int = 50  # exponential backoff with full jitter between attempts
    backoff_max_ms: int = 5000
    batch_size: int = 5000  # messages a rule takes from its queue per dispatch round (calls still carry <= 500)
    max_pending_per_rule: int = 100000  # beyond: QoS 1/2 acks wait, QoS 0 matches are dropped and counted
    remote_access_key: str = ""  # credentials for actions with endpointUrl; empty = api.access_key
    remote_secret_key: str = ""
    remote_region: str = ""  # empty = aws.region
    remote_timeout_secs: float = 10.0
    drain_timeout_secs: float = 5.0  # on shutdown, how long queued messages may still be dispatched
    regex_budget_ms: float = 100.0  # CPU time one regexp_* call may take on a message, then errorAction


# -- jobs + fleet provisioning (owned by gateway/jobs and gateway/provisioning) --
@dataclass
class JobsSection:
    """IoT jobs: timeouts and how often continuous jobs look for new group members."""

    minute_secs: float = 60.0  # length of a "minute" in step/in-progress timeouts (tests shrink it)
    membership_poll_secs: float = 1.0  # continuous jobs: how often group membership changes are picked up
    max_document_bytes: int = 32768  # AWS's job document limit
    presign_expires_secs: int = 3600  # `${aws:iot:s3-presigned-url:...}` URLs when the job gives no expiresInSec


@dataclass
class ProvisioningSection:
    """Fleet provisioning by claim."""

    token_ttl_secs: float = 3600.0  # certificateOwnershipToken lifetime (AWS: one hour)
    sweep_interval_secs: float = 60.0  # how often expired tokens (and their unclaimed certificates) are removed
# -- end jobs + fleet provisioning --


@dataclass
class Config:
    """The whole configuration. `data_dir` comes from $EDGELOOP_HOME, else ./.edgeloop."""

    data_dir: str = ""
    log_level: str = "info"
    aws: AwsSection = field(default_factory=AwsSection)
    pki: PkiSection = field(default_factory=PkiSection)
    mqtt: MqttSection = field(default_factory=MqttSection)
    api: ApiSection = field(default_factory=ApiSection)
    durability: DurabilitySection = field(default_factory=DurabilitySection)
    shadow: ShadowSection = field(default_factory=ShadowSection)
    sqs: SqsSection = field(default_factory=SqsSection)
    kinesis: KinesisSection = field(default_factory=KinesisSection)
    rules: RulesSection = field(default_factory=RulesSection)
    jobs: JobsSection = field(default_factory=JobsSection)
    provisioning: ProvisioningSection = field(default_factory=ProvisioningSection)

    def __post_init__(self) -> None:
        if not self.data_dir:
            self.data_dir = os.environ.get("EDGELOOP_HOME") or ".edgeloop"

    @property
    def home(self) -> Path:
        return Path(self.data_dir)

    def validate(self) -> None:
        """Cross-field checks that a type alone cannot express."""
        if self.pki.key_type not in ("ec", "rsa"):
            raise ConfigError(f"pki.key_type must be 'ec' or 'rsa', not {self.pki.key_type!r}")
        if self.durability.fsync not in ("always", "interval", "never"):
            raise ConfigError(
                f"durability.fsync must be 'always', 'interval' or 'never', not {self.durability.fsync!r}"
            )
        for name in ("port", "https_port", "dev_port"):
            port = getattr(self.mqtt, name)
            if not 0 <= port <= 65535:
                raise ConfigError(f"mqtt.{name} must be a port number 0-65535, not {port}")
        if not 0 <= self.api.port <= 65535:
            raise ConfigError(f"api.port must be a port number 0-65535, not {self.api.port}")
        if not 0 < self.rules.regex_budget_ms < float("inf"):
            raise ConfigError(f"rules.regex_budget_ms must be a positive number of milliseconds, not "
                              f"{self.rules.regex_budget_ms}")


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check `value` against the field type `hint`, converting where TOML cannot express the type."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a table, not {type(value).__name__}")
        return _build(hint, value, key + ".")
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, not {type(value).__name__}")
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _coerce(value, option, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key} has the wrong type: {type(value).__name__}")
    if hint is type(None):
        if value is not None:
            raise ConfigError(f"{key} must be empty")
        return None
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, bool):
        raise ConfigError(f"{key} must be an integer, not a boolean")
    if not isinstance(value, hint):
        raise ConfigError(f"{key} must be {hint.__name__}, not {type(value).__name__} ({value!r})")
    return value


def _build(cls: Any, table: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - names)
    if unknown:
        allowed = ", ".join(sorted(names))
        raise ConfigError(f"unknown config key {prefix}{unknown[0]} (allowed here: {allowed})")
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in table.items()}
    return cls(**kwargs)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Load the configuration.

    `path` is an explicit TOML file (must exist); without it `./edgeloop.toml` is used when present,
    then `<data_dir>/edgeloop.toml`. `overrides` maps dotted keys (``"mqtt.port"``) to values (CLI flags).
    """
    table: dict[str, Any] = {}
    candidates = [Path(path)] if path else [Path(CONFIG_FILE), Config().home / CONFIG_FILE]
    for candidate in candidates:
        if candidate.is_file():
            try:
                table = tomllib.loads(candidate.read_text())
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{candidate}: invalid TOML: {exc}") from exc
            break
        if path:
            raise ConfigError(f"config file {candidate} does not exist")
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        *parents, leaf = dotted.split(".")
        node = table
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    config = _build(Config, table)
    config.validate()
    return config


def to_toml(config: Config) -> str:
    """Render a configuration as TOML (what `edgeloop config show` prints)."""
    scalars: list[str] = []
    tables: list[str] = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            lines = [f"[{f.name}]"] + [
                f"{k} = {_toml_value(v)}" for k, v in dataclasses.asdict(value).items()
            ]
            tables.append("\n".join(lines))
        else:
            scalars.append(f"{f.name} = {_toml_value(value)}")
    return "\n".join(scalars) + "\n\n" + "\n\n".join(tables) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'

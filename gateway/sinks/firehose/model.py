"""A delivery stream's configuration, validated from CreateDeliveryStream and rendered for Describe."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from gateway.sinks.firehose.errors import invalid

NAME = re.compile(r"^[a-zA-Z0-9_.-]{1,64}$")
COMPRESSIONS = ("UNCOMPRESSED", "GZIP")
DEFAULT_SIZE_MB = 5
DEFAULT_INTERVAL = 300


@dataclass
class DeliveryStream:
    name: str
    arn: str
    stream_type: str  # DirectPut | KinesisStreamAsSource
    created: float
    bucket_arn: str
    role_arn: str
    prefix: str = ""
    error_prefix: str = ""
    size_mb: int = DEFAULT_SIZE_MB
    interval_s: int = DEFAULT_INTERVAL
    compression: str = "UNCOMPRESSED"
    file_extension: str = ""
    extended: bool = True  # ExtendedS3DestinationConfiguration (else the legacy S3DestinationConfiguration)
    kinesis_arn: str = ""
    kinesis_role_arn: str = ""
    version: int = 1
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def bucket(self) -> str:
        return self.bucket_arn.removeprefix("arn:aws:s3:::")

    @property
    def size_limit(self) -> int:
        return self.size_mb * 1024 * 1024

    @property
    def kinesis_stream(self) -> str:
        return self.kinesis_arn.rsplit("/", 1)[-1]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeliveryStream:
        return cls(**data)

    def describe(self) -> dict[str, Any]:
        """DescribeDeliveryStream's DeliveryStreamDescription."""
        s3: dict[str, Any] = {
            "RoleARN": self.role_arn, "BucketARN": self.bucket_arn, "Prefix": self.prefix,
            "ErrorOutputPrefix": self.error_prefix,
            "BufferingHints": {"SizeInMBs": self.size_mb, "IntervalInSeconds": self.interval_s},
            "CompressionFormat": self.compression, "EncryptionConfiguration": {"NoEncryptionConfig": "NoEncryption"},
            "CloudWatchLoggingOptions": {"Enabled": False},
        }
        destination: dict[str, Any] = {"DestinationId": "destinationId-000000000001", "S3DestinationDescription": s3}
        if self.extended:
            extended = {**s3, "S3BackupMode": "Disabled"}
            if self.file_extension:
                extended["FileExtension"] = self.file_extension
            destination["ExtendedS3DestinationDescription"] = extended
        description: dict[str, Any] = {
            "DeliveryStreamName": self.name, "DeliveryStreamARN": self.arn, "DeliveryStreamStatus": "ACTIVE",
            "DeliveryStreamEncryptionConfiguration": {"Status": "DISABLED"}, "DeliveryStreamType": self.stream_type,
            "VersionId": str(self.version), "CreateTimestamp": self.created, "Destinations": [destination],
            "HasMoreDestinations": False,
        }
        if self.kinesis_arn:
            description["Source"] = {"KinesisStreamSourceDescription": {
                "KinesisStreamARN": self.kinesis_arn, "RoleARN": self.kinesis_role_arn,
                "DeliveryStartTimestamp": self.created}}
        return description


def apply_update(stream: DeliveryStream, update: dict[str, Any]) -> None:
    """Apply an UpdateDestination's (Extended)S3DestinationUpdate and bump the stream's version."""
    if "BucketARN" in update:
        bucket_arn = update["BucketARN"]
        if not isinstance(bucket_arn, str) or not bucket_arn.startswith("arn:aws:s3:::") or len(bucket_arn) <= 13:
            raise invalid(f"BucketARN must look like arn:aws:s3:::<bucket>, not {bucket_arn!r}")
        stream.bucket_arn = bucket_arn
    hints = update.get("BufferingHints") or {}
    if "SizeInMBs" in hints:
        stream.size_mb = _int_in(hints["SizeInMBs"], "SizeInMBs", 1, 128)
    if "IntervalInSeconds" in hints:
        stream.interval_s = _int_in(hints["IntervalInSeconds"], "IntervalInSeconds", 0, 900)
    if "CompressionFormat" in update:
        if update["CompressionFormat"] not in COMPRESSIONS:
            raise invalid(f"CompressionFormat {update['CompressionFormat']} is not supported here: use "
                          f"{' or '.join(COMPRESSIONS)}")
        stream.compression = update["CompressionFormat"]
    for field_name, attr in (("Prefix", "prefix"), ("ErrorOutputPrefix", "error_prefix"),
                             ("FileExtension", "file_extension"), ("RoleARN", "role_arn")):
        if field_name in update:
            setattr(stream, attr, update[field_name] or "")
    stream.version += 1


def _int_in(value: Any, name: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise invalid(f"{name} must be an integer between {low} and {high}, not {value!r}")
    return value


def from_request(body: dict[str, Any], region: str, account: str, now: float) -> DeliveryStream:
    """Validate a CreateDeliveryStream request (S3 destinations only)."""
    name = body.get("DeliveryStreamName", "")
    if not isinstance(name, str) or not NAME.match(name):
        raise invalid("DeliveryStreamName must be 1-64 characters of [a-zA-Z0-9_.-]")
    stream_type = body.get("DeliveryStreamType", "DirectPut")
    if stream_type not in ("DirectPut", "KinesisStreamAsSource"):
        raise invalid(f"DeliveryStreamType {stream_type} is not supported here: use DirectPut or "
                      "KinesisStreamAsSource")
    extended = "ExtendedS3DestinationConfiguration" in body
    dest = body.get("ExtendedS3DestinationConfiguration") or body.get("S3DestinationConfiguration")
    if not isinstance(dest, dict):
        raise invalid("An ExtendedS3DestinationConfiguration or S3DestinationConfiguration is required "
                      "(other destinations are not supported here)")
    bucket_arn = dest.get("BucketARN", "")
    if not isinstance(bucket_arn, str) or not bucket_arn.startswith("arn:aws:s3:::") or len(bucket_arn) <= 13:
        raise invalid(f"BucketARN must look like arn:aws:s3:::<bucket>, not {bucket_arn!r}")
    hints = dest.get("BufferingHints") or {}
    if hints and ("SizeInMBs" in hints) != ("IntervalInSeconds" in hints):
        raise invalid("BufferingHints needs both SizeInMBs and IntervalInSeconds, or neither")
    compression = dest.get("CompressionFormat", "UNCOMPRESSED")
    if compression not in COMPRESSIONS:
        raise invalid(f"CompressionFormat {compression} is not supported here: use {' or '.join(COMPRESSIONS)}")
    source = body.get("KinesisStreamSourceConfiguration") or {}
    if stream_type == "KinesisStreamAsSource" and not source.get("KinesisStreamARN"):
        raise invalid("KinesisStreamSourceConfiguration.KinesisStreamARN is required for KinesisStreamAsSource")
    if stream_type == "DirectPut" and source:
        raise invalid("KinesisStreamSourceConfiguration is only allowed with DeliveryStreamType "
                      "KinesisStreamAsSource")
    tags = {t["Key"]: t.get("Value", "") for t in body.get("Tags") or []}
    return DeliveryStream(
        name=name, arn=f"arn:aws:firehose:{region}:{account}:deliverystream/{name}", stream_type=stream_type,
        created=now, bucket_arn=bucket_arn, role_arn=dest.get("RoleARN", ""), prefix=dest.get("Prefix", "") or "",
        error_prefix=dest.get("ErrorOutputPrefix", "") or "",
        size_mb=_int_in(hints.get("SizeInMBs", DEFAULT_SIZE_MB), "SizeInMBs", 1, 128),
        interval_s=_int_in(hints.get("IntervalInSeconds", DEFAULT_INTERVAL), "IntervalInSeconds", 0, 900),
        compression=compression, file_extension=dest.get("FileExtension", "") or "", extended=extended,
        kinesis_arn=source.get("KinesisStreamARN", ""), kinesis_role_arn=source.get("RoleARN", ""), tags=tags)

"""Listing and describing: ListStreams, DescribeStream(Summary), DescribeLimits, ListShards with its filters."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from gateway.sinks.kinesis import errors
from gateway.sinks.kinesis.model import Shard, Stream
from gateway.sinks.kinesis.tokens import TokenError, TokenSigner

if TYPE_CHECKING:
    from edgeloop.config import KinesisSection

PAGE_TOKEN_TTL_MS = 300_000
SHARD_FILTERS = ("AFTER_SHARD_ID", "AT_TRIM_HORIZON", "FROM_TRIM_HORIZON", "AT_LATEST", "AT_TIMESTAMP",
                 "FROM_TIMESTAMP")


def now_ms() -> int:
    return int(time.time() * 1000)


class ListingMixin:
    """Read-only listing operations, mixed into `KinesisEngine` (they use its lookups and state)."""

    # Declared for the type checker; `KinesisEngine` defines them.
    account: str
    settings: KinesisSection
    streams: dict[str, Stream]
    signer: TokenSigner
    if TYPE_CHECKING:
        def stream(self, name: str) -> Stream: ...
        def _open_shard_total(self) -> int: ...

    def list_streams(self, limit: int | None = None, exclusive_start: str | None = None,
                     next_token: str | None = None) -> dict[str, Any]:
        limit = self._check_limit(limit, "limit", 10000, 100)
        names = sorted(self.streams)
        if next_token is not None:
            state = self._page_state("streams", next_token)
            exclusive_start = state["after"]
        if exclusive_start is not None:
            names = [n for n in names if n > exclusive_start]
        page, more = names[:limit], len(names) > limit
        out: dict[str, Any] = {"StreamNames": page, "HasMoreStreams": more,
                               "StreamSummaries": [self.streams[n].summary() for n in page]}
        if more:
            out["NextToken"] = self.signer.page("streams", {"after": page[-1], "at": now_ms()})
        return out

    def _page_state(self, kind: str, token: str) -> dict[str, Any]:
        try:
            state = self.signer.parse_page(kind, token)
        except TokenError:
            raise errors.invalid_argument(f"Invalid NextToken: {token!r} was not issued by this service.") from None
        if now_ms() - int(state.get("at", 0)) > PAGE_TOKEN_TTL_MS:
            raise errors.KinesisError("ExpiredNextTokenException", "The NextToken has expired (after 300 seconds).")
        return state

    @staticmethod
    def _check_limit(value: int | None, member: str, maximum: int, default: int) -> int:
        if value is None:
            return default
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise errors.validation(value, member, "Member must have value greater than or equal to 1")
        if value > maximum:
            raise errors.validation(value, member, f"Member must have value less than or equal to {maximum}")
        return value

    def _retained_shards(self, stream: Stream) -> list[Shard]:
        return list(stream.shards)

    def describe_stream(self, name: str, limit: int | None = None,
                        exclusive_start_shard_id: str | None = None) -> dict[str, Any]:
        stream = self.stream(name)
        limit = self._check_limit(limit, "limit", 10000, 100)
        shards = self._retained_shards(stream)
        if exclusive_start_shard_id is not None:
            shards = [s for s in shards if s.shard_id > exclusive_start_shard_id]
        page = shards[:limit]
        return {"StreamDescription": {
            "StreamName": stream.name, "StreamARN": stream.arn, "StreamStatus": "ACTIVE",
            "StreamModeDetails": stream.mode_details(), "Shards": [s.describe() for s in page],
            "HasMoreShards": len(shards) > limit, "RetentionPeriodHours": stream.retention_hours,
            "StreamCreationTimestamp": stream.created_ms / 1000,
            "EnhancedMonitoring": [{"ShardLevelMetrics": list(stream.shard_metrics)}], "EncryptionType": "NONE"}}

    def describe_stream_summary(self, name: str) -> dict[str, Any]:
        stream = self.stream(name)
        return {"StreamDescriptionSummary": {
            "StreamName": stream.name, "StreamARN": stream.arn, "StreamStatus": "ACTIVE",
            "StreamModeDetails": stream.mode_details(), "RetentionPeriodHours": stream.retention_hours,
            "StreamCreationTimestamp": stream.created_ms / 1000,
            "EnhancedMonitoring": [{"ShardLevelMetrics": list(stream.shard_metrics)}], "EncryptionType": "NONE",
            "OpenShardCount": len(stream.open_shards), "ConsumerCount": len(stream.consumers),
            "MaxRecordSizeInKiB": stream.max_record_kib}}

    def describe_limits(self) -> dict[str, int]:
        on_demand = sum(1 for s in self.streams.values() if s.mode == "ON_DEMAND")
        return {"ShardLimit": self.settings.shard_limit, "OpenShardCount": self._open_shard_total(),
                "OnDemandStreamCount": on_demand, "OnDemandStreamCountLimit": 50}

    def list_shards(self, stream_name: str | None = None, next_token: str | None = None,
                    exclusive_start_shard_id: str | None = None, max_results: int | None = None,
                    shard_filter: dict[str, Any] | None = None) -> dict[str, Any]:
        """ListShards. `StreamName` may come with `NextToken` (boto3's paginator sends both)."""
        max_results = min(self._check_limit(max_results, "maxResults", 10000, 1000), 1000)
        if next_token is not None:
            if exclusive_start_shard_id is not None or shard_filter is not None:
                raise errors.invalid_argument("NextToken cannot be provided together with ExclusiveStartShardId "
                                              "or ShardFilter.")
            state = self._page_state("shards", next_token)
            if stream_name is not None and stream_name != state["stream"]:
                raise errors.invalid_argument("NextToken and StreamName cannot be provided together.")
            stream = self.stream(state["stream"])
            if stream.created_ms != state["created"]:
                raise errors.stream_not_found(stream.name, self.account)
            shards = [s for s in stream.shards if s.index in set(state["ids"])]
        else:
            if stream_name is None:
                raise errors.invalid_argument("Either NextToken or StreamName should be provided.")
            stream = self.stream(stream_name)
            shards = self._filter_shards(stream, shard_filter)
            if exclusive_start_shard_id is not None:
                shards = [s for s in shards if s.shard_id > exclusive_start_shard_id]
        page, rest = shards[:max_results], shards[max_results:]
        out: dict[str, Any] = {"Shards": [s.describe() for s in page]}
        if rest:
            out["NextToken"] = self.signer.page("shards", {"stream": stream.name, "created": stream.created_ms,
                                                           "ids": [s.index for s in rest], "at": now_ms()})
        return out

    def _filter_shards(self, stream: Stream, shard_filter: dict[str, Any] | None) -> list[Shard]:
        shards = self._retained_shards(stream)
        if not shard_filter:
            return shards
        kind = shard_filter.get("Type")
        if kind not in SHARD_FILTERS:
            raise errors.validation(kind, "shardFilter.type",
                                    f"Member must satisfy enum value set: [{', '.join(SHARD_FILTERS)}]")
        horizon = max(now_ms() - stream.retention_hours * 3_600_000, stream.created_ms)
        if kind == "AFTER_SHARD_ID":
            after = shard_filter.get("ShardId")
            if not isinstance(after, str):
                raise errors.invalid_argument("ShardFilter of type AFTER_SHARD_ID needs a ShardId.")
            return [s for s in shards if s.shard_id > after]
        if kind == "AT_LATEST":
            return [s for s in shards if s.is_open]
        if kind == "FROM_TRIM_HORIZON":
            return shards
        if kind == "AT_TRIM_HORIZON":
            return [s for s in shards if s.created_ms <= horizon and (s.closed_ms is None or s.closed_ms > horizon)]
        at = shard_filter.get("Timestamp")
        if not isinstance(at, int | float) or isinstance(at, bool):
            raise errors.invalid_argument(f"ShardFilter of type {kind} needs a Timestamp.")
        at_ms = max(int(at * 1000), horizon)
        if kind == "AT_TIMESTAMP":
            return [s for s in shards if s.created_ms <= at_ms and (s.closed_ms is None or s.closed_ms >= at_ms)]
        return [s for s in shards if s.closed_ms is None or s.closed_ms >= at_ms]  # FROM_TIMESTAMP

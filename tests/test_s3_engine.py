"""The S3 engine in process: storage across restarts, listings against a model, checksums, range parsing."""

from __future__ import annotations

import asyncio
import os
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeloop.config import load_config
from gateway.sinks.s3 import checksums
from gateway.sinks.s3.engine import S3Engine
from gateway.sinks.s3.errors import S3Error
from gateway.sinks.s3.http_object import parse_range
from gateway.storage.durable import GroupSync


def with_engine(home: Path, fn: Callable[[S3Engine], Awaitable[Any]], fsync: str = "always") -> Any:
    async def run() -> Any:
        config = load_config(overrides={"data_dir": str(home), "durability.fsync": fsync})
        sync = GroupSync(fsync)
        engine = S3Engine(home, config, sync, inline_max=1024)
        await engine.start()
        try:
            return await fn(engine)
        finally:
            await engine.stop()
            await sync.close()

    return asyncio.run(run())


def test_objects_survive_restart_and_orphans_are_swept(home: Path) -> None:
    big = os.urandom(300_000)

    async def write(e: S3Engine) -> None:
        await e.create_bucket("keep")
        await e.put_object("keep", "small", b"tiny", {"k": "v"}, "text/plain")
        await e.put_object("keep", "big", big)

        async def chunks() -> Any:
            for i in range(0, len(big), 7000):
                yield big[i:i + 7000]

        await e.put_object("keep", "streamed", chunks())

    with_engine(home, write)
    orphan = home / "sinks" / "s3" / "data" / "ab" / "ab-orphan"
    orphan.write_bytes(b"left by a crash between rename and commit")

    async def read(e: S3Engine) -> None:
        small = await e.head_object("keep", "small")
        assert (small.metadata, small.content_type, small.path) == ({"k": "v"}, "text/plain", None)
        assert await e.read_object("keep", "big") == big
        assert await e.read_object("keep", "streamed") == big
        assert (await e.head_object("keep", "big")).path is not None
        v = await e.get_object("keep", "big")
        assert b"".join([c async for c in e.read_body(v, 100, 199)]) == big[100:200]

    with_engine(home, read)
    assert not orphan.exists()


def test_overwrite_and_delete_remove_files(home: Path) -> None:
    async def run(e: S3Engine) -> None:
        await e.create_bucket("files")
        await e.put_object("files", "k", b"a" * 5000)
        await e.put_object("files", "k", b"b" * 5000)
        data = home / "sinks" / "s3" / "data"
        assert sum(len(list(d.iterdir())) for d in data.iterdir()) == 1
        await e.delete_object("files", "k")
        assert sum(len(list(d.iterdir())) for d in data.iterdir()) == 0
        with pytest.raises(S3Error) as exc:
            await e.read_object("files", "k")
        assert exc.value.code == "NoSuchKey"

    with_engine(home, run)


keys_strategy = st.lists(st.text(alphabet="ab/+ é", min_size=1, max_size=6), min_size=0, max_size=25, unique=True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=keys_strategy, prefix=st.sampled_from(["", "a", "a/", "b/"]), delimiter=st.sampled_from(["", "/", "+"]),
       page=st.integers(1, 4))
def test_listing_pages_match_a_model(tmp_path: Path, keys: list[str], prefix: str, delimiter: str,
                                     page: int) -> None:
    expected_keys, expected_prefixes = [], []
    for key in sorted(keys, key=lambda k: k.encode()):
        if not key.startswith(prefix):
            continue
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        if cut >= 0:
            common = key[:cut + len(delimiter)]
            if common not in expected_prefixes:
                expected_prefixes.append(common)
        else:
            expected_keys.append(key)

    async def run(e: S3Engine) -> tuple[list[str], list[str]]:
        await e.create_bucket("bkt")
        for k in keys:
            await e.put_object("bkt", k, b"")
        got_keys: list[str] = []
        got_prefixes: list[str] = []
        marker = ""
        for _ in range(100):
            listing = await e.list_objects("bkt", prefix, delimiter, marker, page)
            assert len(listing.entries) + len(listing.common_prefixes) <= page
            got_keys += [v.key for v in listing.entries]
            got_prefixes += listing.common_prefixes
            if not listing.truncated:
                break
            assert listing.next_marker
            marker = listing.next_marker
        return got_keys, got_prefixes

    home = tmp_path / f"h{abs(hash((tuple(keys), prefix, delimiter, page)))}"
    home.mkdir()
    got_keys, got_prefixes = with_engine(home, run, fsync="never")
    assert got_keys == expected_keys
    assert got_prefixes == expected_prefixes


def test_checksum_vectors() -> None:
    assert checksums.checksum_of("crc32", b"123456789") == "y/Q5Jg=="
    assert checksums.checksum_of("crc32c", b"123456789") == "4waSgw=="  # 0xE3069283
    assert checksums.checksum_of("crc64nvme", b"123456789") == "rosUhgp5mIg="  # 0xAE8B14860A799888
    assert checksums.multipart_etag(["5d41402abc4b2a76b9719d911017c592"]).endswith("-1")
    assert checksums.decode_content_md5("XUFAKrxLKna5cZ2REBfFkg==") == "5d41402abc4b2a76b9719d911017c592"
    assert checksums.decode_content_md5("nope") is None


@given(st.lists(st.binary(max_size=300), max_size=5))
def test_incremental_checksums_match_fallbacks(chunks: list[bytes]) -> None:
    d = checksums.Digests(("crc32", "crc32c", "crc64nvme"))
    for c in chunks:
        d.update(c)
    whole = b"".join(chunks)
    crc32c = checksums._table_crc(checksums._CRC32C_TABLE, 0xFFFFFFFF)
    crc64 = checksums._table_crc(checksums._CRC64NVME_TABLE, 0xFFFFFFFFFFFFFFFF)
    out = d.checksums()
    assert out["crc32"] == checksums.base64.b64encode(zlib.crc32(whole).to_bytes(4, "big")).decode()
    assert out["crc32c"] == checksums.base64.b64encode(crc32c(whole, 0).to_bytes(4, "big")).decode()
    assert out["crc64nvme"] == checksums.base64.b64encode(crc64(whole, 0).to_bytes(8, "big")).decode()


@given(size=st.integers(0, 1000), first=st.integers(0, 1200), length=st.integers(0, 1200))
def test_range_parser(size: int, first: int, length: int) -> None:
    header = f"bytes={first}-{first + length}"
    if first >= size:
        with pytest.raises(S3Error):
            parse_range(header, size)
        return
    start, end = parse_range(header, size)  # type: ignore[misc]
    assert start == first and end == min(first + length, size - 1)
    if size:
        suffix = parse_range(f"bytes=-{length + 1}", size)
        assert suffix == (max(size - length - 1, 0), size - 1)
    assert parse_range("bytes=5-2", size) is None and parse_range("items=0-1", size) is None


@given(st.lists(st.binary(min_size=1, max_size=3000), max_size=6), st.booleans())
def test_aws_chunked_decoder(chunks: list[bytes], signed: bool) -> None:
    from aiohttp import StreamReader
    from aiohttp.base_protocol import BaseProtocol

    from gateway.sinks.s3.chunked import decode_aws_chunked

    extension = b";chunk-signature=" + b"0" * 64 if signed else b""
    framed = b"".join(f"{len(c):x}".encode() + extension + b"\r\n" + c + b"\r\n" for c in chunks)
    framed += b"0" + extension + b"\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"

    async def decode() -> tuple[bytes, dict[str, str]]:
        loop = asyncio.get_running_loop()
        reader = StreamReader(BaseProtocol(loop), 2**16, loop=loop)
        reader.feed_data(framed)
        reader.feed_eof()
        trailers: dict[str, str] = {}
        body = b"".join([c async for c in decode_aws_chunked(reader, trailers)])
        return body, trailers

    body, trailers = asyncio.run(decode())
    assert body == b"".join(chunks) and trailers == {"crc32": "AAAAAA=="}


def test_engine_limits_and_missing_things(home: Path) -> None:
    async def run(e: S3Engine) -> None:
        await e.create_bucket("limits")
        with pytest.raises(S3Error) as exc:
            await e.put_object("nope-bucket", "k", b"x")
        assert exc.value.code == "NoSuchBucket"
        with pytest.raises(S3Error) as exc:
            await e.blobs.spool(b"x" * 2048, (), max_size=1000)
        assert exc.value.code == "EntityTooLarge"
        with pytest.raises(S3Error) as exc:
            await e.put_object("limits", "k" * 1025, b"x")
        assert exc.value.code == "KeyTooLongError"
        upload = await e.create_multipart_upload("limits", "mp")
        with pytest.raises(S3Error) as exc:
            await e.upload_part("limits", "mp", upload, 10001, b"x")
        assert exc.value.code == "InvalidArgument"
        with pytest.raises(S3Error) as exc:
            await e.upload_part("limits", "mp", "missing-upload", 1, b"x")
        assert exc.value.code == "NoSuchUpload"
        with pytest.raises(S3Error) as exc:
            await e.complete_multipart_upload("limits", "mp", upload, [])
        assert exc.value.code == "MalformedXML"

    with_engine(home, run)


def test_download_survives_concurrent_overwrite(home: Path) -> None:
    first, second = b"1" * 5000, b"2" * 6000

    async def run(e: S3Engine) -> None:
        await e.create_bucket("race")
        await e.put_object("race", "k", first)
        serving = await e.get_object("race", "k")
        await e.put_object("race", "k", second)  # deletes the first body's file after its commit
        assert b"".join([c async for c in e.read_body(serving)]) == first
        assert await e.read_object("race", "k") == second

    with_engine(home, run)

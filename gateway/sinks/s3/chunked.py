"""Decoding ``Content-Encoding: aws-chunked`` bodies (what SDKs send over https with trailing checksums).

Framing: ``<hex size>[;chunk-signature=…]\\r\\n<data>\\r\\n`` repeated, a zero-size chunk, then optional
trailer lines (``x-amz-checksum-crc32:…``) and a blank line. Trailing checksums are put into the `trailers`
dict (algorithm -> value) when the body ends, for the engine to verify against the decoded body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import StreamReader

from gateway.sinks.s3 import errors

MAX_CHUNK = 64 * 1024 * 1024


async def decode_aws_chunked(stream: StreamReader, trailers: dict[str, str]) -> AsyncIterator[bytes]:
    while True:
        header = (await stream.readline()).strip()
        if not header:
            raise errors.invalid_request("aws-chunked body ended before its final chunk")
        try:
            size = int(header.split(b";", 1)[0], 16)
        except ValueError:
            raise errors.invalid_request("aws-chunked chunk header is not a hexadecimal size") from None
        if size > MAX_CHUNK:
            raise errors.invalid_request(f"aws-chunked chunks may be at most {MAX_CHUNK} bytes")
        if size == 0:
            while line := (await stream.readline()).strip():
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower().startswith("x-amz-checksum-"):
                    trailers[name.lower().removeprefix("x-amz-checksum-")] = value.strip()
            return
        remaining = size
        while remaining:
            data = await stream.read(min(remaining, 1024 * 1024))
            if not data:
                raise errors.invalid_request("aws-chunked body ended inside a chunk")
            remaining -= len(data)
            yield data
        await stream.readexactly(2)

"""MD2 (RFC 1319), for the md2() SQL function: Python's hashlib no longer ships it.

The S-box is derived, as RFC 1319 describes, from the digits of pi; we recompute it once on first use
rather than embedding a 256-entry table.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache


def _pi_digits() -> Iterator[int]:
    """Decimal digits of pi (Gibbons' unbounded spigot)."""
    q, r, t, k, m, x = 1, 0, 1, 1, 3, 3
    while True:
        if 4 * q + r - t < m * t:
            yield m
            q, r, m = 10 * q, 10 * (r - m * t), (10 * (3 * q + r)) // t - 10 * m
        else:
            q, r, t, k, m, x = q * k, (2 * q + r) * x, t * x, k + 1, (q * (7 * k + 2) + r * x) // (t * x), x + 2


@lru_cache(maxsize=1)
def _sbox() -> tuple[int, ...]:
    digits = _pi_digits()

    def rand(n: int) -> int:
        while True:
            x, y = next(digits), 10
            if n > 10:
                x, y = x * 10 + next(digits), 100
            if n > 100:
                x, y = x * 10 + next(digits), 1000
            if x < n * (y // n):
                return x % n

    s = list(range(256))
    for i in range(2, 257):
        j = rand(i)
        s[j], s[i - 1] = s[i - 1], s[j]
    return tuple(s)


def md2_hex(data: bytes) -> str:
    """Hex MD2 digest of ``data``."""
    s = _sbox()
    pad = 16 - len(data) % 16
    data += bytes([pad]) * pad
    checksum = [0] * 16
    last = 0
    for i in range(0, len(data), 16):
        for j in range(16):
            checksum[j] ^= s[data[i + j] ^ last]
            last = checksum[j]
    data += bytes(checksum)
    x = [0] * 48
    for i in range(0, len(data), 16):
        for j in range(16):
            x[16 + j] = data[i + j]
            x[32 + j] = x[16 + j] ^ x[j]
        t = 0
        for j in range(18):
            for k in range(48):
                x[k] ^= s[t]
                t = x[k]
            t = (t + j) & 0xFF
    return bytes(x[:16]).hex()

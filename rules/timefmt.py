"""Java/Joda date-time patterns for parse_time() and time_to_epoch().

Supported letters: y u (year), M (month: M, MM, MMM, MMMM), d, D (day of year), E (weekday), a (AM/PM),
H k K h (hours), m, s, S (fraction), z (zone name), Z (+hhmm), X x (ISO offsets), V (zone id), and
'quoted text'. Anything else is rejected, which makes the function return Undefined.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_MONTHS = list(calendar.month_name)[1:]
_MONTHS_SHORT = list(calendar.month_abbr)[1:]
_DAYS = list(calendar.day_name)
_DAYS_SHORT = list(calendar.day_abbr)
_LETTERS = frozenset("yuMdDEaHkKhmsSzZXxV")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class PatternError(ValueError):
    """The pattern uses a letter or form we do not support."""


@lru_cache(maxsize=256)
def tokenize(pattern: str) -> tuple[tuple[str, int] | str, ...]:
    """Split a pattern into (letter, count) fields and literal strings."""
    out: list[tuple[str, int] | str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "'":
            if i + 1 < n and pattern[i + 1] == "'":
                out.append("'")
                i += 2
                continue
            end = pattern.find("'", i + 1)
            if end < 0:
                raise PatternError("unterminated quote in pattern")
            out.append(pattern[i + 1 : end].replace("''", "'"))
            i = end + 1
        elif c.isalpha():
            if c not in _LETTERS:
                raise PatternError(f"unsupported pattern letter {c!r}")
            j = i
            while j < n and pattern[j] == c:
                j += 1
            out.append((c, j - i))
            i = j
        else:
            out.append(c)
            i += 1
    return tuple(out)


_OFFSET_RE = re.compile(r"(?:UTC|GMT|UT)?([+-])(\d{1,2})(?::?(\d{2}))?")


@lru_cache(maxsize=256)
def zone(name: str) -> tzinfo:
    """A time zone from an id (``America/Belize``), ``UTC``/``GMT``/``Z`` or an offset (``UTC+01:00``)."""
    if name in ("Z", "UTC", "GMT", "UT"):
        return UTC
    m = _OFFSET_RE.fullmatch(name)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        delta = timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0))
        return timezone(sign * delta)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise PatternError(f"unknown time zone {name!r}") from exc


def _offset_text(dt: datetime, colon: bool, z_for_zero: bool) -> str:
    off = dt.utcoffset() or timedelta(0)
    if z_for_zero and not off:
        return "Z"
    total = int(off.total_seconds()) // 60
    sign = "-" if total < 0 else "+"
    hh, mm = divmod(abs(total), 60)
    return f"{sign}{hh:02d}:{mm:02d}" if colon else f"{sign}{hh:02d}{mm:02d}"


def _format_field(dt: datetime, letter: str, count: int) -> str:
    if letter in "yu":
        return f"{dt.year % 100:02d}" if count == 2 else str(dt.year).zfill(count)
    if letter == "M":
        if count >= 4:
            return _MONTHS[dt.month - 1]
        if count == 3:
            return _MONTHS_SHORT[dt.month - 1]
        return str(dt.month).zfill(count)
    if letter == "E":
        return _DAYS[dt.weekday()] if count >= 4 else _DAYS_SHORT[dt.weekday()]
    if letter == "a":
        return "AM" if dt.hour < 12 else "PM"
    if letter == "S":
        return f"{dt.microsecond:06d}"[:count].ljust(count, "0")
    if letter == "z":
        return dt.tzname() or "UTC"
    if letter == "Z":
        return _offset_text(dt, colon=count == 2, z_for_zero=False) if count < 3 else _zone_id(dt)
    if letter in "Xx":
        return _offset_text(dt, colon=count >= 3, z_for_zero=letter == "X")
    if letter == "V":
        return _zone_id(dt)
    numbers = {
        "d": dt.day, "D": dt.timetuple().tm_yday, "H": dt.hour, "k": dt.hour or 24, "K": dt.hour % 12,
        "h": dt.hour % 12 or 12, "m": dt.minute, "s": dt.second,
    }  # fmt: skip
    return str(numbers[letter]).zfill(count)


def _zone_id(dt: datetime) -> str:
    tz = dt.tzinfo
    if isinstance(tz, ZoneInfo):
        return tz.key
    return "UTC" if not dt.utcoffset() else _offset_text(dt, colon=True, z_for_zero=False)


def format_epoch_ms(pattern: str, epoch_ms: int, tz_name: str = "UTC") -> str:
    """parse_time(): format epoch milliseconds with a Joda pattern in a zone."""
    fields = tokenize(pattern)
    dt = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).astimezone(zone(tz_name))
    dt = dt.replace(microsecond=(epoch_ms % 1000) * 1000)
    return "".join(f if isinstance(f, str) else _format_field(dt, *f) for f in fields)


_NAME_RE = {
    ("M", 3): "|".join(_MONTHS_SHORT),
    ("M", 4): "|".join(_MONTHS),
    ("E", 3): "|".join(_DAYS_SHORT),
    ("E", 4): "|".join(_DAYS),
}


def _field_regex(letter: str, count: int) -> str:
    if letter in "ME" and count >= 3:
        return f"(?P<{letter}>{_NAME_RE[(letter, min(count, 4))]})"
    if letter == "a":
        return "(?P<a>AM|PM|am|pm)"
    if letter in "zV":
        return rf"(?P<{letter}>[A-Za-z][A-Za-z0-9_/+\-:]*)"
    if letter in "ZXx":
        return rf"(?P<{letter}>Z|[+-]\d{{2}}:?\d{{2}}|[+-]\d{{2}})"
    if letter == "S":
        return rf"(?P<S>\d{{{count}}})"
    if letter in "yu":
        return rf"(?P<{letter}>[+-]?\d{{{count},9}})" if count != 2 else rf"(?P<{letter}>\d{{2}})"
    return rf"(?P<{letter}>\d{{{count},{max(count, 2) if letter != 'D' else 3}}})"


@lru_cache(maxsize=256)
def _parser(pattern: str) -> re.Pattern[str]:
    parts = []
    seen: set[str] = set()
    for f in tokenize(pattern):
        if isinstance(f, str):
            parts.append(re.escape(f))
            continue
        letter, count = f
        if letter in seen:
            raise PatternError(f"pattern letter {letter!r} appears twice")
        seen.add(letter)
        parts.append(_field_regex(letter, count))
    return re.compile("".join(parts))


def parse_to_epoch_ms(text: str, pattern: str) -> int:
    """time_to_epoch(): parse text with a Java pattern into epoch milliseconds (UTC when no zone)."""
    m = _parser(pattern).fullmatch(text.strip())
    if not m:
        raise PatternError("text does not match the pattern")
    g = {k: v for k, v in m.groupdict().items() if v is not None}
    year = int(g.get("y", g.get("u", "1970")))
    if ("y" in g and len(g["y"]) == 2) or ("u" in g and len(g["u"]) == 2):
        year += 2000
    month_text = g.get("M", "1")
    if month_text.isdigit():
        month = int(month_text)
    else:
        month = (_MONTHS.index(month_text) if month_text in _MONTHS else _MONTHS_SHORT.index(month_text)) + 1
    hour = int(g.get("H", g.get("k", "0"))) % 24
    if "h" in g or "K" in g:
        hour = int(g.get("h", g.get("K", "0"))) % 12 + (12 if g.get("a", "AM").upper() == "PM" else 0)
    fraction = g.get("S", "0")
    micro = int((fraction + "000000")[:6])
    tz: tzinfo = UTC
    for key in ("V", "z", "Z", "X", "x"):
        if key in g:
            tz = zone(g[key])
            break
    base = datetime(year, month, int(g.get("d", "1")), hour, int(g.get("m", "0")), int(g.get("s", "0")), micro)
    if "D" in g:
        base = base.replace(month=1, day=1) + timedelta(days=int(g["D"]) - 1)
    return (base.replace(tzinfo=tz) - _EPOCH) // timedelta(milliseconds=1)

"""Where Firehose puts an object: ``<evaluated prefix><name>-<version>-YYYY-MM-DD-HH-MM-SS-<uuid><ext>``.

A prefix without ``!{…}`` expressions is followed by the default UTC time prefix ``YYYY/MM/dd/HH/``; one with
expressions is evaluated instead (``!{timestamp:<Java DateTimeFormatter pattern>}``, ``!{firehose:random-string}``,
``!{firehose:error-output-type}``).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import uuid

_EXPRESSION = re.compile(r"!\{([a-zA-Z]+):([^}]*)\}")
_PATTERN_TOKEN = re.compile(r"'[^']*'|yyyy|yy|MM|dd|HH|mm|ss|SSS|.", re.S)
_TOKENS = {"yyyy": "%Y", "yy": "%y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}


def java_time_format(pattern: str, when: dt.datetime) -> str:
    """Format `when` with the common subset of Java's DateTimeFormatter letters and 'quoted' literals."""
    out = []
    for token in _PATTERN_TOKEN.findall(pattern):
        if token.startswith("'"):
            out.append(token[1:-1] or "'")
        elif token == "SSS":
            out.append(f"{when.microsecond // 1000:03d}")
        elif token in _TOKENS:
            out.append(when.strftime(_TOKENS[token]))
        else:
            out.append(token)
    return "".join(out)


def evaluate_prefix(prefix: str, when: dt.datetime, error_type: str = "") -> str:
    if not _EXPRESSION.search(prefix):
        return prefix + when.strftime("%Y/%m/%d/%H/")

    def replace(match: re.Match[str]) -> str:
        namespace, value = match.group(1), match.group(2)
        if namespace == "timestamp":
            return java_time_format(value, when)
        if namespace == "firehose" and value == "random-string":
            return secrets.token_hex(5)
        if namespace == "firehose" and value == "error-output-type":
            return error_type
        return match.group(0)

    return _EXPRESSION.sub(replace, prefix)


def object_key(prefix: str, stream: str, version: int, oldest_arrival: float, extension: str = "",
               error_type: str = "") -> str:
    when = dt.datetime.fromtimestamp(oldest_arrival, dt.UTC)
    suffix = f"{stream}-{version}-{when:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}{extension}"
    return evaluate_prefix(prefix, when, error_type) + suffix

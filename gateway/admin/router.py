"""A small path router for the admin API: ``METHOD template`` routes with ``{name}`` segments."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from gateway.admin.errors import MethodNotAllowed, NotFound


@dataclass(frozen=True)
class Call:
    """One admitted request as a handler sees it."""

    path: Mapping[str, str]  # the template's {name} segments, percent-decoded
    query: Mapping[str, str]
    body: bytes


Handler = Callable[[Call], Awaitable[Any]]


class Router:
    """Routes paths relative to the API's root (``rules/{name}/enable``) to handlers, or says why not."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], list[str], Handler]] = []

    def add(self, method: str, template: str, handler: Handler) -> None:
        names = re.findall(r"\{(\w+)\}", template)
        pattern = re.compile("^" + re.sub(r"\\\{\w+\\\}", "([^/]+)", re.escape(template)) + "$")
        self._routes.append((method, pattern, names, handler))

    def resolve(self, method: str, raw_path: str) -> tuple[Handler, dict[str, str]]:
        """The handler for `method` on `raw_path` and its path parameters; NotFound / MethodNotAllowed."""
        allowed: list[str] = []
        for route_method, pattern, names, handler in self._routes:
            match = pattern.match(raw_path)
            if match is None:
                continue
            if route_method == method:
                return handler, {n: unquote(v) for n, v in zip(names, match.groups(), strict=True)}
            allowed.append(route_method)
        if allowed:
            methods = tuple(sorted(set(allowed)))
            raise MethodNotAllowed(f"{method} is not allowed here; use {', '.join(methods)}", methods)
        raise NotFound(f"no admin endpoint at /_edgeloop/{raw_path}")

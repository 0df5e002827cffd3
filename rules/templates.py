"""Substitution templates: ``${expression}`` inside action fields.

A template is compiled once, at rule creation, and rendered per message against the *original*
message (payload, topic(), SET variables) — SELECT aliases are not visible. ``$$`` is a literal
``$`` (republish to ``$$aws/...`` targets ``$aws/...``); a ``$`` not followed by ``{`` stays as is.
"""

from __future__ import annotations

from collections.abc import Callable

from rules.compiler import compile_expression
from rules.context import Env
from rules.errors import RulesError, TemplateError
from rules.parser import parse_template_expression
from rules.values import Value, render_text


class Template:
    """A compiled template; :meth:`render` never raises (Undefined renders as "")."""

    __slots__ = ("_parts", "_single", "source", "static")

    def __init__(self, source: str, parts: list[str | Callable[[Env], Value]]) -> None:
        self.source = source
        self._parts = parts
        self.static: str | None = parts[0] if len(parts) == 1 and isinstance(parts[0], str) else None
        if not parts:
            self.static = ""
        # The common ``${expression}`` alone (a partition key, a topic level): no join, no generator.
        only = parts[0] if len(parts) == 1 else None
        self._single: Callable[[Env], Value] | None = None if only is None or isinstance(only, str) else only

    def __repr__(self) -> str:
        return f"Template({self.source!r})"

    @property
    def is_static(self) -> bool:
        return self.static is not None

    def render(self, env: Env) -> str:
        if self.static is not None:
            return self.static
        single = self._single
        if single is not None:
            v = single(env)
            return v if type(v) is str else render_text(v)
        # A part is a str or a function; `type(p) is str` does not narrow the other branch for the checker.
        return "".join([p if type(p) is str else render_text(p(env)) for p in self._parts])  # type: ignore[operator]


def compile_template(text: str, version: str, variables: frozenset[str] = frozenset(), field: str = "") -> Template:
    """Compile a field value; errors name ``field`` and say what is wrong."""
    parts: list[str | Callable[[Env], Value]] = []
    literal: list[str] = []
    i, n = 0, len(text)
    where = f"{field}: " if field else ""
    while i < n:
        c = text[i]
        if c == "$" and i + 1 < n and text[i + 1] == "$":
            literal.append("$")
            i += 2
        elif c == "$" and i + 1 < n and text[i + 1] == "{":
            try:
                node, end = parse_template_expression(text, i + 2)
                fn = compile_expression(node, version, variables)
            except RulesError as exc:
                raise TemplateError(f"{where}invalid substitution template {text!r}: {exc}") from exc
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(fn)
            i = end
        else:
            literal.append(c)
            i += 1
    if literal:
        parts.append("".join(literal))
    return Template(text, parts)

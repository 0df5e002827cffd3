"""IoT SQL tokenizer. Lazy, so a `${...}` template can be lexed up to its closing brace only."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from rules.errors import SqlSyntaxError

KEYWORDS = frozenset(
    {
        "SELECT", "FROM", "WHERE", "AS", "AND", "OR", "NOT", "CASE", "WHEN", "THEN", "ELSE", "END",
        "TRUE", "FALSE", "NULL", "SET", "IN", "CONTAINS",
    }
)  # fmt: skip

# Longest first, so "<=" wins over "<".
_OPERATORS = (
    "<>", "!=", "<=", ">=", "=", "<", ">", "+", "-", "*", "/", "%", "(", ")", "[", "]", "{", "}", ",", ".", ":",
)  # fmt: skip

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "/": "/", "\\": "\\", "'": "'", '"': '"'}


class Kind(Enum):
    IDENT = "identifier"
    KEYWORD = "keyword"
    STRING = "string"
    INT = "integer"
    DECIMAL = "decimal"
    VAR = "variable"
    OP = "operator"
    EOF = "end of input"


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    text: str  # keyword: upper-case; string: the decoded value; op: the operator
    offset: int
    line: int
    column: int
    end: int  # offset just past the token

    def describe(self) -> str:
        """How the token appears in an error message."""
        if self.kind is Kind.EOF:
            return "end of input"
        if self.kind is Kind.STRING:
            return f"string '{self.text}'"
        return f"'{self.text}'"


class Lexer:
    """Produces tokens on demand from ``text`` starting at ``start``."""

    def __init__(self, text: str, start: int = 0) -> None:
        self.text = text
        self.pos = start
        self.line = text.count("\n", 0, start) + 1
        self.line_start = text.rfind("\n", 0, start) + 1

    def error(self, message: str, offset: int) -> SqlSyntaxError:
        line = self.text.count("\n", 0, offset) + 1
        col = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        return SqlSyntaxError(message, line, col)

    def _skip_space(self) -> None:
        text, n = self.text, len(self.text)
        pos = self.pos
        while pos < n and text[pos] in " \t\r\n\f\v":
            if text[pos] == "\n":
                self.line += 1
                self.line_start = pos + 1
            pos += 1
        self.pos = pos

    def next(self) -> Token:
        self._skip_space()
        text, pos = self.text, self.pos
        line, col = self.line, pos - self.line_start + 1
        if pos >= len(text):
            return Token(Kind.EOF, "", pos, line, col, pos)
        c = text[pos]
        if c.isalpha() or c == "_":
            end = pos + 1
            while end < len(text) and (text[end].isalnum() or text[end] == "_"):
                end += 1
            word = text[pos:end]
            self.pos = end
            upper = word.upper()
            if upper in KEYWORDS:
                return Token(Kind.KEYWORD, upper, pos, line, col, end)
            return Token(Kind.IDENT, word, pos, line, col, end)
        if c.isdigit():
            return self._number(pos, line, col)
        if c in "'\"":
            return self._string(pos, line, col, c)
        if c == "@":
            end = pos + 1
            while end < len(text) and (text[end].isalnum() or text[end] == "_"):
                end += 1
            if end == pos + 1:
                raise self.error("expected a variable name after '@'", pos)
            self.pos = end
            return Token(Kind.VAR, text[pos + 1 : end], pos, line, col, end)
        for op in _OPERATORS:
            if text.startswith(op, pos):
                self.pos = pos + len(op)
                return Token(Kind.OP, op, pos, line, col, self.pos)
        raise self.error(f"unexpected character {c!r}", pos)

    def _number(self, pos: int, line: int, col: int) -> Token:
        text = self.text
        end = pos
        while end < len(text) and text[end].isdigit():
            end += 1
        kind = Kind.INT
        if end + 1 < len(text) and text[end] == "." and text[end + 1].isdigit():
            kind = Kind.DECIMAL
            end += 1
            while end < len(text) and text[end].isdigit():
                end += 1
        if end < len(text) and text[end] in "eE":
            exp = end + 1
            if exp < len(text) and text[exp] in "+-":
                exp += 1
            if exp < len(text) and text[exp].isdigit():
                kind = Kind.DECIMAL
                end = exp
                while end < len(text) and text[end].isdigit():
                    end += 1
        if end < len(text) and (text[end].isalpha() or text[end] == "_"):
            raise self.error(f"invalid number {text[pos : end + 1]!r}", pos)
        self.pos = end
        return Token(kind, text[pos:end], pos, line, col, end)

    def _string(self, pos: int, line: int, col: int, quote: str) -> Token:
        text = self.text
        out: list[str] = []
        i = pos + 1
        while True:
            if i >= len(text):
                raise self.error("unterminated string literal", pos)
            c = text[i]
            if c == quote:
                break
            if c == "\\":
                if i + 1 >= len(text):
                    raise self.error("unterminated string literal", pos)
                e = text[i + 1]
                if e == "u":
                    hexdigits = text[i + 2 : i + 6]
                    if len(hexdigits) != 4 or any(h not in "0123456789abcdefABCDEF" for h in hexdigits):
                        raise self.error("invalid \\u escape (expected 4 hex digits)", i)
                    out.append(chr(int(hexdigits, 16)))
                    i += 6
                    continue
                if e not in _ESCAPES:
                    raise self.error(f"invalid escape '\\{e}' in string literal", i)
                out.append(_ESCAPES[e])
                i += 2
                continue
            if c == "\n":
                self.line += 1
                self.line_start = i + 1
            out.append(c)
            i += 1
        self.pos = i + 1
        return Token(Kind.STRING, "".join(out), pos, line, col, self.pos)

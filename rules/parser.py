"""Recursive-descent parser for IoT SQL statements and `${...}` template expressions.

Precedence (lowest first): OR, AND, NOT, comparison (= <> != < > <= >= IN CONTAINS), + -, * / %,
unary -, postfix (.name, [index]). AWS does not document precedence; this is the SQL-standard order.
"""

from __future__ import annotations

from rules.ast import (
    ArrayLit,
    Binary,
    Call,
    Case,
    Cast,
    Expr,
    Field,
    Index,
    Literal,
    Member,
    ObjectLit,
    Query,
    SelectItem,
    Star,
    Subquery,
    Unary,
    Var,
)
from rules.errors import SqlSyntaxError
from rules.lexer import Kind, Lexer, Token

COMPARISON_OPS = frozenset({"=", "<>", "!=", "<", ">", "<=", ">="})
CAST_TYPES = frozenset(
    {"STRING", "NVARCHAR", "TEXT", "NTEXT", "VARCHAR", "INT", "INTEGER", "DOUBLE", "DECIMAL", "BOOL", "BOOLEAN"}
)


class Parser:
    def __init__(self, text: str, start: int = 0) -> None:
        self.lexer = Lexer(text, start)
        self.tok = self.lexer.next()
        self._ahead: Token | None = None

    # -- token helpers -------------------------------------------------------------------------
    def advance(self) -> Token:
        tok = self.tok
        if self._ahead is not None:
            self.tok, self._ahead = self._ahead, None
        else:
            self.tok = self.lexer.next()
        return tok

    def peek(self) -> Token:
        """The token after the current one."""
        if self._ahead is None:
            self._ahead = self.lexer.next()
        return self._ahead

    def error(self, expected: str, tok: Token | None = None) -> SqlSyntaxError:
        tok = tok or self.tok
        return SqlSyntaxError(f"expected {expected}, found {tok.describe()}", tok.line, tok.column)

    def at_op(self, op: str) -> bool:
        return self.tok.kind is Kind.OP and self.tok.text == op

    def at_kw(self, kw: str) -> bool:
        return self.tok.kind is Kind.KEYWORD and self.tok.text == kw

    def expect_op(self, op: str) -> Token:
        if not self.at_op(op):
            raise self.error(f"'{op}'")
        return self.advance()

    def expect_kw(self, kw: str) -> Token:
        if not self.at_kw(kw):
            raise self.error(kw)
        return self.advance()

    def raw(self, tok: Token) -> str:
        return self.lexer.text[tok.offset : tok.end]

    # -- statements ----------------------------------------------------------------------------
    def statement(self) -> Query:
        sets: list[tuple[str, Expr]] = []
        if self.at_kw("SET"):
            self.advance()
            while True:
                if self.tok.kind is not Kind.VAR:
                    raise self.error("a variable such as @name")
                name = self.advance().text
                self.expect_op("=")
                sets.append((name, self.expr()))
                if not self.at_op(","):
                    break
                self.advance()
        query = self.select(nested=False)
        if self.tok.kind is not Kind.EOF:
            raise self.error("end of statement" if query.where is not None else "WHERE or end of statement")
        return Query(query.items, query.value, query.source, query.where, tuple(sets))

    def select(self, nested: bool) -> Query:
        self.expect_kw("SELECT")
        value: Expr | None = None
        items: tuple[SelectItem, ...] = ()
        if self.tok.kind is Kind.IDENT and self.tok.text.upper() == "VALUE" and not self._value_is_field():
            self.advance()
            value = self.expr()
        else:
            items = self.select_list()
        source: str | Expr | None = None
        if self.at_kw("FROM"):
            if nested:
                self.advance()
            source = self.postfix() if nested else self.topic_filter()
        elif nested:
            raise self.error("FROM")
        elif self.tok.kind is not Kind.EOF and not self.at_kw("WHERE"):
            raise self.error("FROM" if not self.at_op(",") else "a select expression")
        where = None
        if self.at_kw("WHERE"):
            self.advance()
            where = self.expr()
        return Query(items, value, source, where)

    def topic_filter(self) -> str:
        """The FROM topic filter: a quoted string, or (as some AWS examples write it) unquoted text."""
        from_tok = self.tok
        lexer = self.lexer
        if self._ahead is None and lexer.pos == from_tok.end:
            text, pos = lexer.text, from_tok.end
            while pos < len(text) and text[pos].isspace():
                pos += 1
            end = pos
            while end < len(text) and not text[end].isspace():
                end += 1
            if pos < end and text[pos] not in "'\"" and text[pos:end].upper() != "WHERE":
                lexer.pos = end
                lexer.line = text.count("\n", 0, end) + 1
                lexer.line_start = text.rfind("\n", 0, end) + 1
                self.tok = lexer.next()
                return text[pos:end]
        self.advance()
        if self.tok.kind is not Kind.STRING:
            raise self.error("a quoted topic filter such as 'sensors/+/data'")
        return self.advance().text

    def _value_is_field(self) -> bool:
        """VALUE is contextual: ``SELECT value FROM ...``, ``SELECT value, x``, ``SELECT value AS v`` select a field."""
        nxt = self.peek()
        return (
            nxt.kind is Kind.EOF
            or (nxt.kind is Kind.KEYWORD and nxt.text in ("FROM", "AS", "WHERE"))
            or (nxt.kind is Kind.OP and nxt.text in (",", "."))
        )

    def select_list(self) -> tuple[SelectItem, ...]:
        items = [self.select_item()]
        while self.at_op(","):
            self.advance()
            items.append(self.select_item())
        return tuple(items)

    def select_item(self) -> SelectItem:
        if self.at_op("*"):
            nxt = self.peek()
            if (
                nxt.kind is Kind.EOF
                or (nxt.kind is Kind.OP and nxt.text == ",")
                or (nxt.kind is Kind.KEYWORD and nxt.text in ("FROM", "WHERE"))
            ):
                self.advance()
                return SelectItem(Star())
        if self.tok.kind is Kind.EOF or self.at_kw("FROM"):
            raise self.error("a select expression")
        expr = self.expr()
        alias = None
        if self.at_kw("AS"):
            self.advance()
            parts = [self.alias_part()]
            while self.at_op("."):
                self.advance()
                parts.append(self.alias_part())
            alias = tuple(parts)
        return SelectItem(expr, alias)

    def alias_part(self) -> str:
        tok = self.tok
        if tok.kind in (Kind.IDENT, Kind.KEYWORD):
            self.advance()
            return self.raw(tok)
        if tok.kind is Kind.STRING:
            self.advance()
            return tok.text
        raise self.error("an alias name after AS")

    # -- expressions ---------------------------------------------------------------------------
    def expr(self) -> Expr:
        left = self.and_expr()
        while self.at_kw("OR"):
            self.advance()
            left = Binary("OR", left, self.and_expr())
        return left

    def and_expr(self) -> Expr:
        left = self.not_expr()
        while self.at_kw("AND"):
            self.advance()
            left = Binary("AND", left, self.not_expr())
        return left

    def not_expr(self) -> Expr:
        if self.at_kw("NOT"):
            self.advance()
            return Unary("NOT", self.not_expr())
        return self.comparison()

    def comparison(self) -> Expr:
        left = self.additive()
        while True:
            tok = self.tok
            if tok.kind is Kind.OP and tok.text in COMPARISON_OPS:
                op = "<>" if tok.text == "!=" else tok.text
            elif tok.kind is Kind.KEYWORD and tok.text in ("IN", "CONTAINS"):
                op = tok.text
            else:
                return left
            self.advance()
            left = Binary(op, left, self.additive())

    def additive(self) -> Expr:
        left = self.multiplicative()
        while self.tok.kind is Kind.OP and self.tok.text in ("+", "-"):
            op = self.advance().text
            left = Binary(op, left, self.multiplicative())
        return left

    def multiplicative(self) -> Expr:
        left = self.unary()
        while self.tok.kind is Kind.OP and self.tok.text in ("*", "/", "%"):
            op = self.advance().text
            left = Binary(op, left, self.unary())
        return left

    def unary(self) -> Expr:
        if self.at_op("-"):
            self.advance()
            return Unary("-", self.unary())
        return self.postfix()

    def postfix(self) -> Expr:
        node = self.primary()
        while True:
            if self.at_op("."):
                self.advance()
                tok = self.tok
                if tok.kind not in (Kind.IDENT, Kind.KEYWORD):
                    raise self.error("an attribute name after '.'")
                self.advance()
                node = Member(node, self.raw(tok))
            elif self.at_op("["):
                self.advance()
                index = self.expr()
                self.expect_op("]")
                node = Index(node, index)
            else:
                return node

    def primary(self) -> Expr:
        tok = self.tok
        kind = tok.kind
        if kind is Kind.INT:
            self.advance()
            return Literal(int(tok.text))
        if kind is Kind.DECIMAL:
            self.advance()
            return Literal(float(tok.text))
        if kind is Kind.STRING:
            self.advance()
            return Literal(tok.text)
        if kind is Kind.VAR:
            self.advance()
            return Var(tok.text)
        if kind is Kind.IDENT:
            self.advance()
            if self.at_op("("):
                return self.call(tok)
            return Field(tok.text)
        if kind is Kind.KEYWORD:
            if tok.text in ("TRUE", "FALSE", "NULL"):
                self.advance()
                return Literal({"TRUE": True, "FALSE": False, "NULL": None}[tok.text])
            if tok.text == "CASE":
                return self.case()
        if kind is Kind.OP:
            if tok.text == "(":
                self.advance()
                if self.at_kw("SELECT"):
                    node: Expr = Subquery(self.select(nested=True))
                else:
                    node = self.expr()
                self.expect_op(")")
                return node
            if tok.text == "{":
                return self.object_literal()
            if tok.text == "[":
                return self.array_literal()
            if tok.text == "*":
                self.advance()
                return Star()
        raise self.error("an expression")

    def call(self, name_tok: Token) -> Expr:
        self.expect_op("(")
        name = name_tok.text
        if name.lower() == "cast":
            expr = self.expr()
            self.expect_kw("AS")
            type_tok = self.tok
            if type_tok.kind not in (Kind.IDENT, Kind.KEYWORD) or type_tok.text.upper() not in CAST_TYPES:
                raise self.error("a cast type (String, Int, Integer, Decimal, Double, Bool, Boolean, ...)")
            self.advance()
            self.expect_op(")")
            return Cast(expr, type_tok.text.upper())
        args: list[Expr] = []
        if not self.at_op(")"):
            args.append(self.expr())
            while self.at_op(","):
                self.advance()
                args.append(self.expr())
        if not self.at_op(")"):
            raise self.error("',' or ')'")
        self.advance()
        return Call(name, tuple(args))

    def case(self) -> Expr:
        self.expect_kw("CASE")
        subject = self.expr()
        whens: list[tuple[Expr, Expr]] = []
        while self.at_kw("WHEN"):
            self.advance()
            match = self.expr()
            self.expect_kw("THEN")
            whens.append((match, self.expr()))
        if not whens:
            raise self.error("WHEN")
        default = None
        if self.at_kw("ELSE"):
            self.advance()
            default = self.expr()
        if not self.at_kw("END"):
            raise self.error("WHEN, ELSE or END")
        self.advance()
        return Case(subject, tuple(whens), default)

    def object_literal(self) -> Expr:
        self.expect_op("{")
        items: list[tuple[str, Expr]] = []
        if not self.at_op("}"):
            while True:
                tok = self.tok
                if tok.kind is Kind.STRING:
                    key = tok.text
                elif tok.kind in (Kind.IDENT, Kind.KEYWORD):
                    key = self.raw(tok)
                else:
                    raise self.error("an object key")
                self.advance()
                self.expect_op(":")
                items.append((key, self.expr()))
                if not self.at_op(","):
                    break
                self.advance()
        if not self.at_op("}"):
            raise self.error("',' or '}'")
        self.advance()
        return ObjectLit(tuple(items))

    def array_literal(self) -> Expr:
        self.expect_op("[")
        items: list[Expr] = []
        if not self.at_op("]"):
            items.append(self.expr())
            while self.at_op(","):
                self.advance()
                items.append(self.expr())
        if not self.at_op("]"):
            raise self.error("',' or ']'")
        self.advance()
        return ArrayLit(tuple(items))


def parse_sql(text: str) -> Query:
    """Parse a whole IoT SQL statement. Raises :class:`SqlSyntaxError` with line and column."""
    return Parser(text).statement()


def parse_expression(text: str) -> Expr:
    """Parse a lone expression (the whole text)."""
    p = Parser(text)
    node = p.expr()
    if p.tok.kind is not Kind.EOF:
        raise p.error("end of expression")
    return node


def parse_template_expression(text: str, start: int) -> tuple[Expr, int]:
    """Parse the expression of a ``${...}`` that starts at ``start``; return it and the offset after '}'."""
    p = Parser(text, start)
    if p.at_op("}"):
        raise p.error("an expression inside ${}")
    node = p.expr()
    if not p.at_op("}"):
        raise p.error("'}' closing the ${...} template")
    return node, p.tok.end

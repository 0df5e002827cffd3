"""The rules engine's exception hierarchy.

Every error but :class:`RuleEvaluationError` is raised while a rule is *created* (parsed, compiled,
validated). Evaluating a compiled rule against a message raises only :class:`RuleEvaluationError` (a
bounded computation that ran out of budget); ``evaluate_rule`` turns it into failed actions for the
rule's errorAction and never raises.
"""

from __future__ import annotations

from edgeloop.errors import EdgeloopError


class RulesError(EdgeloopError):
    """Base class of every rules-engine error."""


class SqlSyntaxError(RulesError):
    """The SQL text (or a `${...}` template expression) does not parse.

    The message starts with ``line L, column C:`` (1-based) and says what was expected.
    """

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.line = line
        self.column = column
        self.reason = message


class SqlSemanticError(RulesError):
    """The SQL parses but cannot run: unknown function, wrong arity, feature not in this SQL version, ..."""


class TopicFilterError(RulesError):
    """A FROM topic filter (or a topic) breaks the MQTT wildcard rules."""


class TemplateError(RulesError):
    """A `${...}` substitution template in an action field is invalid."""


class RuleValidationError(RulesError):
    """A topic-rule payload, rule name or action field is invalid. The message names the field."""


class RuleEvaluationError(RulesError):
    """A message could not be evaluated: a bounded computation (a regular expression) ran out of budget.

    Raised by the compiled expressions (``CompiledQuery.run`` / ``evaluate``, template rendering) and by
    constant folding at creation; ``evaluate_rule`` reports it as a failure of every action of the rule.
    """

"""AWS IoT SQL rules engine: parser, compiler, functions, substitution templates, topic-rule model.

Pure library: no I/O, no asyncio. Typical use by a dispatcher::

    rule = parse_topic_rule("TempAlerts", topic_rule_payload)     # raises RulesError subclasses
    index.put(rule)
    rules, topic = index.route(published_topic)
    msg = MessageContext(topic, payload, client_id=..., principal=..., trace_id=...)
    for rule in rules:
        for inv in evaluate_rule(rule, msg):                      # never raises
            ship(inv)                                             # inv.params / inv.payload / inv.error
"""

from rules.actions import (
    ActionFailure,
    ActionInvocation,
    FirehoseAction,
    KinesisAction,
    RepublishAction,
    S3Action,
    SqsAction,
)
from rules.compiler import DEFAULT_SQL_VERSION, NO_MATCH, SQL_VERSIONS, CompiledQuery, compile_sql
from rules.context import MessageContext
from rules.engine import RuleIndex, error_message, evaluate_rule, render_error_action
from rules.errors import (
    RuleEvaluationError,
    RulesError,
    RuleValidationError,
    SqlSemanticError,
    SqlSyntaxError,
    TemplateError,
    TopicFilterError,
)
from rules.model import SUPPORTED_ACTION_KINDS, TopicRule, parse_topic_rule, validate_rule_name
from rules.parser import parse_expression, parse_sql
from rules.printer import to_expr_sql, to_sql
from rules.regexes import DEFAULT_BUDGET_MS as DEFAULT_REGEX_BUDGET_MS
from rules.templates import Template, compile_template
from rules.topics import TopicIndex, basic_ingest, filter_matches, validate_filter
from rules.values import UNDEFINED, dumps, to_payload_bytes

__all__ = [
    "DEFAULT_REGEX_BUDGET_MS",
    "DEFAULT_SQL_VERSION",
    "NO_MATCH",
    "SQL_VERSIONS",
    "SUPPORTED_ACTION_KINDS",
    "UNDEFINED",
    "ActionFailure",
    "ActionInvocation",
    "CompiledQuery",
    "FirehoseAction",
    "KinesisAction",
    "MessageContext",
    "RepublishAction",
    "RuleEvaluationError",
    "RuleIndex",
    "RuleValidationError",
    "RulesError",
    "S3Action",
    "SqlSemanticError",
    "SqlSyntaxError",
    "SqsAction",
    "Template",
    "TemplateError",
    "TopicFilterError",
    "TopicIndex",
    "TopicRule",
    "basic_ingest",
    "compile_sql",
    "compile_template",
    "dumps",
    "error_message",
    "evaluate_rule",
    "filter_matches",
    "parse_expression",
    "parse_sql",
    "parse_topic_rule",
    "render_error_action",
    "to_expr_sql",
    "to_payload_bytes",
    "to_sql",
    "validate_filter",
    "validate_rule_name",
]

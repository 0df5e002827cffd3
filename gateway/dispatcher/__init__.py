"""The rules dispatcher: runs AWS IoT topic rules (the `rules` library) inside the gateway.

Rule files in ``<home>/rules/*.json`` (hot-reloaded), a durable journal in ``<home>/journal/`` written
before the broker acknowledges QoS >= 1 messages, per-rule lanes that ship actions to the local sinks or
remote AWS-compatible endpoints with retries, the errorAction and a dead-letter file, the topic-rule
operations of the ``iot`` control plane, and the ``edgeloop rules`` CLI. See docs/dispatcher.md.
"""

from gateway.dispatcher.api import add_rule_routes
from gateway.dispatcher.dispatcher import Dispatcher, DispatchSettings
from gateway.dispatcher.errors import ActionError, DispatchError, JournalError, RuleExistsError, RuleNotFoundError
from gateway.dispatcher.journal import Journal
from gateway.dispatcher.service import RulesService, open_rules
from gateway.dispatcher.store import RuleFiles, StoredRule

__all__ = [
    "ActionError",
    "DispatchError",
    "DispatchSettings",
    "Dispatcher",
    "Journal",
    "JournalError",
    "RuleExistsError",
    "RuleFiles",
    "RuleNotFoundError",
    "RulesService",
    "StoredRule",
    "add_rule_routes",
    "open_rules",
]

"""Emulated Amazon SQS: standard and FIFO queues, durable, over awsJson and the legacy query protocol."""

from gateway.sinks.sqs.engine import SqsEngine
from gateway.sinks.sqs.errors import SqsError
from gateway.sinks.sqs.service import SqsService, create_sqs_service

__all__ = ["SqsEngine", "SqsError", "SqsService", "create_sqs_service"]

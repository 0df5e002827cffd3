"""Which failures are worth another attempt, and how long to wait before it."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from gateway.awsapi.errors import AwsError
from gateway.dispatcher.errors import ActionError

# AWS error codes that mean "try again later" (throttling and transient service trouble).
RETRYABLE_CODES = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "Throttling", "ThrottledException",
    "RequestThrottled", "RequestThrottledException", "TooManyRequestsException", "RequestLimitExceeded",
    "SlowDown", "ServiceUnavailable", "ServiceUnavailableException", "InternalFailure", "InternalError",
    "InternalServerError", "InternalException", "KMSThrottlingException", "LimitExceededException",
    "EndpointUnreachable", "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete",
    "AWS.SimpleQueueService.RequestThrottled",
})


def classify(exc: BaseException) -> ActionError:
    """An ActionError for any failure of one attempt."""
    if isinstance(exc, ActionError):
        return exc
    if isinstance(exc, AwsError):
        retryable = exc.code in RETRYABLE_CODES or exc.status >= 500 or exc.status == 429
        return ActionError(f"{exc.code}: {exc.message}", exc.code, retryable)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return ActionError("the request timed out", "RequestTimeout", True)
    if isinstance(exc, ConnectionError | OSError):
        return ActionError(f"connection failed: {exc}", "EndpointUnreachable", True)
    return ActionError(f"{type(exc).__name__}: {exc}", "InternalError", False)


def error_from_code(code: str, message: str, status: int = 400) -> ActionError:
    """An ActionError for a per-record failure reported inside a successful batch response."""
    return ActionError(f"{code}: {message}", code, code in RETRYABLE_CODES or status >= 500)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(max, base * 2**n))."""

    max_attempts: int = 8
    base: float = 0.05
    cap: float = 5.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        return (rng or _RNG).uniform(0.0, min(self.cap, self.base * (2 ** attempt)))


_RNG = random.Random()

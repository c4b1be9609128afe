"""Every error the gateway can answer with, as one tree rendered into one OpenAI error envelope.

Each class fixes the HTTP status, the OpenAI ``type`` and a default ``code``; instances add the
message and, for request errors, the ``param`` that names the exact offending field.
This module imports nothing from the web framework; ``web/rendering.py`` turns these into JSON.

    GatewayError                      500 server_error / internal_error
    ├── InvalidRequest                400 invalid_request_error / invalid_value (param names the field)
    │   └── UnsupportedFeature        400 invalid_request_error / unsupported_feature
    ├── AuthenticationFailed          401 invalid_request_error / invalid_api_key
    ├── AdminAuthenticationFailed     401 invalid_request_error / invalid_admin_token
    ├── NotFound                      404 invalid_request_error / not_found
    ├── Conflict                      409 invalid_request_error / conflict
    │   ├── IdempotencyKeyReused      409 invalid_request_error / idempotency_key_reused
    │   └── IdempotencyKeyInUse       409 invalid_request_error / idempotency_key_in_use
    ├── PayloadTooLarge               413 invalid_request_error / payload_too_large
    ├── UnsupportedMediaType          415 invalid_request_error / unsupported_media_type
    ├── UnsatisfiableRange            416 invalid_request_error / range_not_satisfiable
    ├── RateLimited                   429 rate_limit_error / rate_limit_exceeded (+ Retry-After)
    │   └── TrafficLimitExceeded      429 a team's or key's limit (scope says which)
    │       ├── RequestRateExceeded       rate_limit_exceeded (requests_per_minute)
    │       └── ConcurrencyLimitExceeded  concurrency_limit_exceeded (max_in_flight_jobs)
    ├── BudgetExceeded                429 insufficient_quota / budget_exceeded
    ├── ServiceUnavailable            503 server_error / service_unavailable
    └── UpstreamError                 502 upstream_error / upstream_error
        ├── UpstreamAuthError         502 upstream_error / upstream_auth_error
        ├── UpstreamQuotaError        502 upstream_error / upstream_quota_error
        ├── UpstreamTimeout           504 upstream_error / upstream_timeout
        └── OutcomeUnknown            502 upstream_error / submit_outcome_unknown

``should_retry`` (False on every answer a retry cannot fix: validation, budgets, quota,
idempotency conflicts, an unknown outcome) is rendered once, in ``web/rendering.py``, as the
``x-should-retry: false`` header the official OpenAI SDKs obey before their own retry rules.
"""

from __future__ import annotations

from typing import ClassVar


class GatewayError(Exception):
    """Base of every error the gateway renders; carries everything the envelope needs."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    default_code: ClassVar[str] = "internal_error"
    # None: let the client decide; False: a retry cannot change the answer (x-should-retry).
    should_retry: ClassVar[bool | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code
        self.retry_after = retry_after

    def envelope(self) -> dict[str, dict[str, str | None]]:
        """The OpenAI error body: ``{"error": {"message", "type", "param", "code"}}``."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    default_code = "invalid_value"
    should_retry = False


class UnsupportedFeature(InvalidRequest):
    default_code = "unsupported_feature"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "invalid_request_error"
    default_code = "invalid_api_key"
    should_retry = False


class AdminAuthenticationFailed(GatewayError):
    status = 401
    type = "invalid_request_error"
    default_code = "invalid_admin_token"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    default_code = "not_found"
    should_retry = False


class Conflict(GatewayError):
    status = 409
    type = "invalid_request_error"
    default_code = "conflict"
    should_retry = False


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    default_code = "payload_too_large"
    should_retry = False


class UnsupportedMediaType(GatewayError):
    status = 415
    type = "invalid_request_error"
    default_code = "unsupported_media_type"
    should_retry = False


class UnsatisfiableRange(GatewayError):
    status = 416
    type = "invalid_request_error"
    default_code = "range_not_satisfiable"
    should_retry = False


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class TrafficLimitExceeded(RateLimited):
    """A team's or key's concurrency or rate limit refused a create: retryable, unlike a budget
    (``Retry-After`` says when); ``scope`` and ``limit`` name which limit, for metrics."""

    limit: ClassVar[str] = ""

    def __init__(
        self,
        message: str,
        *,
        scope: str = "",
        retry_after: float | None = None,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code, retry_after=retry_after)
        self.scope = scope


class RequestRateExceeded(TrafficLimitExceeded):
    limit = "requests_per_minute"


class ConcurrencyLimitExceeded(TrafficLimitExceeded):
    default_code = "concurrency_limit_exceeded"
    limit = "max_in_flight_jobs"


class BudgetExceeded(GatewayError):
    """A budget limit would be exceeded; the message names scope, window, remainder and cost."""

    status = 429
    type = "insufficient_quota"
    default_code = "budget_exceeded"
    should_retry = False

    def __init__(
        self,
        message: str,
        *,
        scope: str = "",
        window: str = "",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code)
        self.scope = scope
        self.window = window


class ServiceUnavailable(GatewayError):
    status = 503
    type = "server_error"
    default_code = "service_unavailable"


class UpstreamError(GatewayError):
    status = 502
    type = "upstream_error"
    default_code = "upstream_error"
    # Set by the adapter on a transport failure: whether the request may have reached the
    # upstream (False: it certainly never left). None when the upstream answered.
    request_sent: bool | None = None


class UpstreamAuthError(UpstreamError):
    default_code = "upstream_auth_error"


class UpstreamQuotaError(UpstreamError):
    default_code = "upstream_quota_error"
    should_retry = False


class OutcomeUnknown(UpstreamError):
    """The upstream may or may not have created the job: its price stays reserved until
    evidence, an operator or the deadline decides, and a blind retry could pay twice."""

    default_code = "submit_outcome_unknown"
    should_retry = False

    @classmethod
    def for_video(cls, video_id: str, *, detail: str = "") -> OutcomeUnknown:
        said = f" ({detail})" if detail else ""
        return cls(
            f"The outcome of creating video {video_id} is unknown{said}: the upstream may or may"
            " not have started it. Its price stays reserved until the gateway or an operator"
            f" settles it. Do not create it again blindly: GET /v1/videos/{video_id} shows what"
            " became of it, and a retry with the same Idempotency-Key answers this same video."
        )


class IdempotencyKeyReused(Conflict):
    default_code = "idempotency_key_reused"


class IdempotencyKeyInUse(Conflict):
    default_code = "idempotency_key_in_use"


class UpstreamTimeout(UpstreamError):
    status = 504
    default_code = "upstream_timeout"


# Exception types that mean "briefly unavailable" (lost connection, locked database,
# unreachable endpoint). Each adapter declares its driver's own as ``outage_errors``; the app
# collects them from the adapters it opened (no import-time registry), and the web layer answers
# them with ``ServiceUnavailable`` (503), so clients retry later and nothing half-done is left.
OutageTypes = tuple[type[BaseException], ...]
BASE_OUTAGES: OutageTypes = (ConnectionError, TimeoutError)


def is_unavailable(exc: BaseException, outages: OutageTypes = ()) -> bool:
    return isinstance(exc, BASE_OUTAGES + outages)

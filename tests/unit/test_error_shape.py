"""One error shape everywhere: every GatewayError renders the exact OpenAI envelope."""

from __future__ import annotations

import orjson
import pytest

from gateway import errors
from gateway.errors import GatewayError
from gateway.web.rendering import error_response


def all_error_classes() -> list[type[GatewayError]]:
    found: list[type[GatewayError]] = []
    pending: list[type[GatewayError]] = [GatewayError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_every_error_class_is_in_the_documented_tree():
    documented = errors.__doc__ or ""
    for cls in all_error_classes():
        if cls.__module__ == "gateway.errors":
            assert cls.__name__ in documented, cls.__name__


@pytest.mark.parametrize("cls", all_error_classes(), ids=lambda c: c.__name__)
def test_envelope_shape(cls: type[GatewayError]):
    error = cls("Something precise went wrong.", param="content[2].role")
    response = error_response(error)
    body = orjson.loads(response.body)
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"] == "Something precise went wrong."
    assert body["error"]["param"] == "content[2].role"
    assert isinstance(body["error"]["type"], str) and body["error"]["type"]
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert response.status_code == cls.status
    assert 400 <= cls.status < 600
    assert response.headers["content-type"] == "application/json"


def test_param_defaults_to_null_and_code_can_be_overridden():
    body = orjson.loads(error_response(errors.InvalidRequest("x", code="custom")).body)
    assert body["error"]["param"] is None
    assert body["error"]["code"] == "custom"


def test_retry_after_header():
    response = error_response(errors.RateLimited("slow down", retry_after=2.4))
    assert response.headers["retry-after"] == "2"


# Answers a retry cannot change: the SDKs must not repeat them (issue #13).
NOT_RETRYABLE = {
    "InvalidRequest",
    "UnsupportedFeature",
    "AuthenticationFailed",
    "NotFound",
    "Conflict",
    "IdempotencyKeyReused",
    "IdempotencyKeyInUse",
    "PayloadTooLarge",
    "UnsupportedMediaType",
    "UnsatisfiableRange",
    "BudgetExceeded",
    "UpstreamQuotaError",
    "OutcomeUnknown",
}


@pytest.mark.parametrize("cls", all_error_classes(), ids=lambda c: c.__name__)
def test_x_should_retry_false_exactly_where_a_retry_cannot_help(cls: type[GatewayError]):
    response = error_response(cls("x"))
    if cls.__name__ in NOT_RETRYABLE:
        assert response.headers["x-should-retry"] == "false"
    else:
        assert "x-should-retry" not in response.headers  # the SDK's own rules apply


def test_an_unknown_outcome_names_the_video():
    error = errors.OutcomeUnknown.for_video("video_abc", detail="timed out")
    assert "video video_abc is unknown (timed out)" in error.message
    assert error.code == "submit_outcome_unknown"

"""The ``segments`` extension: a client's storyboard for a chained video, validated.

``[{"prompt": "Seconds 0-2: ...", "duration": 8}, ...]``: at least two segments, each within
the model's per-job bounds, together at most ``requests.max_chained_seconds``. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from gateway.domain.catalog import MAX_PROMPT_CHARS, ModelSpec
from gateway.domain.video_request import StoryboardSegment
from gateway.errors import InvalidRequest

EXAMPLE = '[{"prompt": "Seconds 0-2: ...", "duration": 8}, {"prompt": "...", "duration": 7}]'


def chaining_allowed(spec: ModelSpec, max_chained_seconds: int) -> bool:
    """Whether ``spec`` can make videos longer than one job (it returns last frames)."""
    return spec.returns_last_frame and max_chained_seconds > spec.max_duration


def parse_storyboard(
    value: object, spec: ModelSpec, max_chained_seconds: int
) -> tuple[StoryboardSegment, ...]:
    """The validated storyboard, or ``()`` when none was sent."""
    if value is None:
        return ()
    if isinstance(value, str):  # multipart (the SDK) sends lists of objects as JSON text
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise _invalid("segments", f"segments must be a JSON array like {EXAMPLE}.") from None
    if not chaining_allowed(spec, max_chained_seconds):
        raise _invalid("segments", f"{spec.id} cannot chain segments (no last frames).")
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise _invalid("segments", f"segments must be an array like {EXAMPLE}.", "invalid_type")
    most = max_chained_seconds // spec.min_duration
    if not 2 <= len(value) <= most:
        raise _invalid("segments", f"segments must have from 2 to {most} items; got {len(value)}.")
    storyboard = tuple(_parse_segment(item, index, spec) for index, item in enumerate(value))
    total = sum(segment.duration for segment in storyboard)
    if total > max_chained_seconds:
        message = f"the segments last {total} seconds; at most {max_chained_seconds} are allowed."
        raise _invalid("segments", message)
    return storyboard


def _parse_segment(item: Mapping[str, object], index: int, spec: ModelSpec) -> StoryboardSegment:
    where = f"segments[{index}]"
    unknown = sorted(set(item) - {"prompt", "duration"})
    if unknown:
        raise _invalid(f"{where}.{unknown[0]}", "a segment has only prompt and duration.")
    prompt = item.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise _invalid(f"{where}.prompt", "each segment needs a non-empty prompt.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise _invalid(f"{where}.prompt", f"at most {MAX_PROMPT_CHARS} characters are allowed.")
    duration = item.get("duration")
    if isinstance(duration, bool) or not isinstance(duration, int):
        raise _invalid(f"{where}.duration", "duration must be an integer.", "invalid_type")
    if not spec.min_duration <= duration <= spec.max_duration:
        bounds = f"between {spec.min_duration} and {spec.max_duration} seconds for {spec.id}"
        raise _invalid(f"{where}.duration", f"a segment's duration must be {bounds}.")
    return StoryboardSegment(prompt=prompt, duration=duration)


def _invalid(param: str, message: str, code: str = "invalid_value") -> InvalidRequest:
    return InvalidRequest(message[0].upper() + message[1:], param=param, code=code)

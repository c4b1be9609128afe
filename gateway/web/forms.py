"""Rebuild the nested body the OpenAI SDK flattened into multipart parts.

The SDK writes nested dicts as ``a[b][c]``, lists as ``a[]`` and lists of objects as
``a[][key]`` grouped by key (all ``type`` parts, then all ``role`` parts...), which loses the
item grouping. Pure: values stay text or ``UploadedFile``; ``parse_video_request`` coerces them.
Imports no web framework, so the rules are testable on plain lists.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from gateway.domain.requests import UploadedFile
from gateway.errors import InvalidRequest

FormValue = str | UploadedFile
KeyPath = tuple[str, ...]

_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")


def rebuild_form(items: Sequence[tuple[str, str | UploadedFile]]) -> dict[str, Any]:
    """A nested dict from ordered multipart ``(name, value)`` parts.

    ``a[b][c]`` nests dicts, ``a[]`` appends to a list, and ``a[][k]`` builds a list of objects,
    regrouped by position only when every sub-key occurs equally often (else the grouping is
    lost: ``ambiguous_multipart``). A name given twice is a ``duplicate_parameter``.
    """
    body: dict[str, Any] = {}
    object_lists: dict[KeyPath, dict[KeyPath, list[FormValue]]] = {}
    for name, value in items:
        path = _split(name)
        if "" in path[:-1]:
            cut = path.index("")
            prefix, sub = path[:cut], path[cut + 1 :]
            if "" in sub:
                raise _ambiguous(prefix)
            object_lists.setdefault(prefix, {}).setdefault(sub, []).append(value)
        else:
            _insert(body, path, value)
    for prefix, columns in object_lists.items():
        parent = _descend(body, prefix[:-1])
        if prefix[-1] in parent:
            raise _duplicate(prefix)
        parent[prefix[-1]] = _regroup(prefix, columns)
    return body


def _split(name: str) -> KeyPath:
    """``content[][image_url][url]`` -> ``("content", "", "image_url", "url")``."""
    match = _KEY.fullmatch(name)
    if match is None:
        return (name,)
    return (match[1], *_SEGMENT.findall(match[2]))


def _insert(body: dict[str, Any], path: KeyPath, value: FormValue) -> None:
    if path[-1] == "" and len(path) > 1:
        parent = _descend(body, path[:-2])
        values = parent.setdefault(path[-2], [])
        if not isinstance(values, list):
            raise _duplicate(path[:-1])
        values.append(value)
        return
    parent = _descend(body, path[:-1])
    if path[-1] in parent:
        raise _duplicate(path)
    parent[path[-1]] = value


def _descend(body: dict[str, Any], path: KeyPath) -> dict[str, Any]:
    node = body
    for depth, segment in enumerate(path):
        child = node.setdefault(segment, {})
        if not isinstance(child, dict):
            raise _duplicate(path[: depth + 1])
        node = child
    return node


def _regroup(prefix: KeyPath, columns: dict[KeyPath, list[FormValue]]) -> list[dict[str, Any]]:
    lengths = {len(values) for values in columns.values()}
    if len(lengths) != 1:
        raise _ambiguous(prefix)
    objects: list[dict[str, Any]] = [{} for _ in range(lengths.pop())]
    try:
        for sub, values in columns.items():
            for target, value in zip(objects, values, strict=True):
                _insert(target, sub, value)
    except InvalidRequest:  # e.g. both a[][b] and a[][b][c]
        raise _ambiguous(prefix) from None
    return objects


def _render(path: KeyPath) -> str:
    return ".".join(segment or "[]" for segment in path)


def _duplicate(path: KeyPath) -> InvalidRequest:
    name = _render(path)
    return InvalidRequest(
        f"The form field '{name}' is given more than once (or both as a value and as an "
        "object or list); send it once.",
        param=name,
        code="duplicate_parameter",
    )


def _ambiguous(prefix: KeyPath) -> InvalidRequest:
    name = _render(prefix)
    return InvalidRequest(
        f"The multipart form flattens the objects in '{name}' so that they cannot be told "
        "apart (the OpenAI Python SDK groups their fields by key). Send the request as JSON "
        '(with the SDK: extra_headers={"Content-Type": "application/json"}) or send '
        f"'{name}' as a JSON-encoded string (json.dumps of the list).",
        param=name,
        code="ambiguous_multipart",
    )

"""Bring the `config` part of helm/gateway/values.schema.json in line with gateway/settings.py.

The chart's schema lists every gateway setting (section, key, JSON type) so that a misspelt key
fails `helm install` instead of crash-looping the pods. After adding or removing a setting, run

    .venv/bin/python scripts/sync_chart_schema.py

tests/deploy/test_chart.py checks that the two agree. Extra constraints already in the schema
for a key (enum, minimum, description, ...) are kept while its type is unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway import settings  # noqa: E402

SCHEMA = ROOT / "helm" / "gateway" / "values.schema.json"


def json_type(hint: Any) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    if origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
        return {"type": "object", "additionalProperties": {"type": "string"}}
    return {"type": {bool: "boolean", int: "integer", float: "number", str: "string"}[hint]}


def config_schema(old: Mapping[str, Any]) -> dict[str, Any]:
    sections: dict[str, Any] = {}
    hints = typing.get_type_hints(settings.Settings)
    for name in settings.SECTIONS:
        cls = hints[name]
        field_hints = typing.get_type_hints(cls)
        old_props = old.get(name, {}).get("properties", {})
        props: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            new = json_type(field_hints[f.name])
            previous = old_props.get(f.name)
            props[f.name] = previous if previous and previous.get("type") == new["type"] else new
        sections[name] = {"type": "object", "properties": props, "additionalProperties": False}
    return sections


def main() -> int:
    schema = json.loads(SCHEMA.read_text())
    config = schema["properties"]["config"]
    updated = config_schema(config.get("properties", {}))
    if updated == config.get("properties"):
        print(f"{SCHEMA.relative_to(ROOT)}: config already matches gateway/settings.py")
        return 0
    config["properties"] = updated
    config["additionalProperties"] = False
    SCHEMA.write_text(json.dumps(schema, indent=2) + "\n")
    print(f"{SCHEMA.relative_to(ROOT)}: config updated from gateway/settings.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())

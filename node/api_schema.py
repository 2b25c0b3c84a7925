"""The local API's contract: ``node/api_schema.json`` (OpenRPC 1.2), and the checks it drives.

The schema file is the one description of every method, its params and its result, and of the
notifications subscribers receive. The server checks every call's params against it before a
handler runs (filling in documented defaults), so a handler only sees well-typed params and a
client learns which field is wrong; the tests check every result and notification against it, so
the document cannot drift from the code.

Only the part of JSON Schema the document uses is implemented — ``type`` (one or a list),
``properties``, ``required``, ``additionalProperties: false``, ``items``, ``minItems``, ``maxItems``, ``enum``, ``minimum``, ``maximum``,
``minLength``, ``maxLength``, ``pattern``, ``$ref`` into ``#/components/schemas`` — rather than
depending on ``jsonschema``, whose import alone would cost ``distspace cat`` more than its budget.
Standard library only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from node.rpc import invalid_params

SCHEMA_FILE = Path(__file__).with_name("api_schema.json")
_REF_PREFIX = "#/components/schemas/"
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}

Schema = dict[str, Any]


class SchemaViolation(Exception):
    """A value does not match its schema (a result or notification the server got wrong)."""


@dataclass(frozen=True, slots=True)
class MethodSpec:
    name: str
    params: Schema  # an object schema built from the OpenRPC param list
    result: Schema


class ApiSchema:
    """The methods and notifications of the schema document, and validation against them."""

    def __init__(self, document: dict[str, Any]) -> None:
        self._schemas: dict[str, Schema] = document.get("components", {}).get("schemas", {})
        self.methods = {spec["name"]: _method(spec) for spec in document["methods"]}
        self.notifications: dict[str, Schema] = document.get("x-notifications", {})

    @classmethod
    def load(cls, path: Path = SCHEMA_FILE) -> ApiSchema:
        return cls(json.loads(path.read_text()))

    def check_params(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` with the schema's defaults filled in.

        Raises:
            RpcError: invalid params (-32602), naming the field and what it must be.
        """
        spec = self.methods[method]
        problem = self._problem(spec.params, params, "params")
        if problem is not None:
            raise invalid_params(f"{method}: {problem}")
        defaults = {
            name: prop["default"] for name, prop in spec.params["properties"].items() if "default" in prop and name not in params
        }
        return {**defaults, **params}

    def check_result(self, method: str, result: object) -> None:
        self._raise_for(self.methods[method].result, result, f"result of {method}")

    def check_notification(self, method: str, params: object) -> None:
        if method not in self.notifications:
            raise SchemaViolation(f"{method} is not a notification of the schema")
        self._raise_for(self.notifications[method], params, f"params of {method}")

    def _raise_for(self, schema: Schema, value: object, where: str) -> None:
        problem = self._problem(schema, value, where)
        if problem is not None:
            raise SchemaViolation(problem)

    def _problem(self, schema: Schema, value: object, where: str) -> str | None:
        """Why ``value`` does not match ``schema``, or None if it does."""
        if "$ref" in schema:
            return self._problem(self._schemas[schema["$ref"].removeprefix(_REF_PREFIX)], value, where)
        types = schema.get("type")
        if types is not None:
            allowed = [types] if isinstance(types, str) else types
            if not any(_is_type(value, name) for name in allowed):
                return f"{where} must be {' or '.join(allowed)}, not {_describe(value)}"
        if "enum" in schema and value not in schema["enum"]:
            return f"{where} must be one of {', '.join(map(json.dumps, schema['enum']))}, not {_describe(value)}"
        if isinstance(value, str):
            return _string_problem(schema, value, where)
        if isinstance(value, int | float) and not isinstance(value, bool):
            if "minimum" in schema and value < schema["minimum"]:
                return f"{where} must be at least {schema['minimum']}, not {value}"
            if "maximum" in schema and value > schema["maximum"]:
                return f"{where} must be at most {schema['maximum']}, not {value}"
        if isinstance(value, list):
            return self._array_problem(schema, value, where)
        if isinstance(value, dict):
            return self._object_problem(schema, value, where)
        return None

    def _array_problem(self, schema: Schema, value: list[Any], where: str) -> str | None:
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
            return f"{where} must have {schema.get('minItems', 0)} to {schema.get('maxItems', 'any number of')} items, not {len(value)}"
        if "items" in schema:
            for index, item in enumerate(value):
                if (problem := self._problem(schema["items"], item, f"{where}[{index}]")) is not None:
                    return problem
        return None

    def _object_problem(self, schema: Schema, value: dict[str, Any], where: str) -> str | None:
        properties: dict[str, Schema] = schema.get("properties", {})
        missing = [name for name in schema.get("required", ()) if name not in value]
        if missing:
            return f"{where} lacks {', '.join(missing)}"
        if schema.get("additionalProperties") is False:
            unknown = sorted(set(value) - set(properties))
            if unknown:
                known = ", ".join(properties) or "none"
                return f"{where} has unknown member(s) {', '.join(unknown)} (known: {known})"
        for name, member in value.items():
            if name in properties and (problem := self._problem(properties[name], member, f"{where}.{name}")):
                return problem
        return None


@cache
def schema() -> ApiSchema:
    """The schema document, read once per process."""
    return ApiSchema.load()


def _method(spec: dict[str, Any]) -> MethodSpec:
    params = spec.get("params", [])
    return MethodSpec(
        spec["name"],
        {
            "type": "object",
            "properties": {param["name"]: param["schema"] for param in params},
            "required": [param["name"] for param in params if param.get("required")],
            "additionalProperties": False,
        },
        spec["result"]["schema"],
    )


def _string_problem(schema: Schema, value: str, where: str) -> str | None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"{where} is not valid Unicode (it holds a lone surrogate)"
    if len(value) < schema.get("minLength", 0):
        return f"{where} must have at least {schema['minLength']} character(s)"
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        return f"{where} must have at most {schema['maxLength']} characters, not {len(value)}"
    if "pattern" in schema and not re.search(schema["pattern"], value):
        return f"{where} must match {schema['pattern']}, not {value[:40]!r}"
    return None


def _is_type(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return name == "boolean"
    return isinstance(value, _JSON_TYPES[name])


def _describe(value: object) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= 40 else text[:37] + "..."


__all__ = ["ApiSchema", "MethodSpec", "SchemaViolation", "schema"]

"""node/api_schema.json is the contract: every method the server has is in it and nothing else,
it is well-formed, and its validator says precisely what is wrong with a value."""

from __future__ import annotations

import json
from typing import Any

import pytest

from node.api_methods import HANDLERS
from node.api_schema import SCHEMA_FILE, ApiSchema, SchemaViolation, schema
from node.rpc import AUTH_METHOD, INVALID_PARAMS, RpcError


def test_the_server_has_exactly_the_methods_of_the_schema() -> None:
    assert set(schema().methods) == {*HANDLERS, AUTH_METHOD}


def test_every_method_and_notification_is_described_and_every_reference_resolves() -> None:
    document = json.loads(SCHEMA_FILE.read_text())
    defined = set(document["components"]["schemas"])
    text = SCHEMA_FILE.read_text()
    referenced = {ref.split("/")[-1] for ref in _refs(document)}
    assert referenced <= defined, referenced - defined
    for method in document["methods"]:
        assert method["summary"], method["name"]
        assert all(param.get("schema") for param in method["params"]), method["name"]
    assert set(document["x-notifications"]) == {"file.changed", "tree.changed", "peers.changed", "presence.changed", "doc.changed", "call.progress"}
    stat = next(method for method in document["methods"] if method["name"] == "fs.stat")["result"]["schema"]
    assert "executable" in document["components"]["schemas"]["Stat"]["required"] and "executable" in stat["required"]  # fs.ls, fs.stat
    assert '"openrpc": "1.2.6"' in text


def _refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [value["$ref"]] if "$ref" in value else [ref for item in value.values() for ref in _refs(item)]
    if isinstance(value, list):
        return [ref for item in value for ref in _refs(item)]
    return []


def test_params_get_their_defaults_and_precise_refusals() -> None:
    assert schema().check_params("fs.write", {"path": "a", "text": "x"})["parents"] is False
    with pytest.raises(RpcError) as caught:
        schema().check_params("history.log", {"limit": True})
    assert caught.value.code == INVALID_PARAMS
    assert caught.value.message == "history.log: params.limit must be integer, not true"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ({"a": 1, "b": []}, None),
        ({"b": []}, "x lacks a"),
        ({"a": 1, "b": [], "c": 0}, "unknown member(s) c"),
        ({"a": -1, "b": []}, "x.a must be at least 0"),
        ({"a": 1, "b": ["zz"]}, "x.b[0] must match"),
        ({"a": 1, "b": [], "e": "maybe"}, 'x.e must be one of "yes", "no"'),
        ({"a": None, "b": []}, "x.a must be integer, not null"),
    ],
)
def test_the_validator_names_the_field_and_the_rule(value: dict[str, Any], says: str | None) -> None:
    document = {
        "methods": [{"name": "m", "params": [], "result": {"name": "r", "schema": {"$ref": "#/components/schemas/X"}}}],
        "components": {
            "schemas": {
                "X": {
                    "type": "object",
                    "properties": {
                        "a": {"type": "integer", "minimum": 0},
                        "b": {"type": "array", "items": {"type": "string", "pattern": "^[0-9a-f]+$"}},
                        "e": {"enum": ["yes", "no"]},
                    },
                    "required": ["a", "b"],
                    "additionalProperties": False,
                }
            }
        },
    }
    checker = ApiSchema(document)
    if says is None:
        checker.check_result("m", value)
        return
    with pytest.raises(SchemaViolation) as caught:
        checker.check_result("m", value)
    assert says.replace("x", "result of m", 1) in str(caught.value)

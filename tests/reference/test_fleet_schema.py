"""The production profile's JSON Schemas (traces/*-v4.schema.json) are generated from the
structs (reference/trace_events.py) and refuse what a production line must not be."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from jsonschema import Draft202012Validator

from reference.trace_events import (
    PROD_HISTORY_SCHEMA_PATH,
    PROD_SCHEMA_PATH,
    ProdTraceEvent,
    production_schema_texts,
)

LINE = {"action": "Commit", "v": 4, "group": "g0001", "node": "n03", "replica": "r2",
        "seq": 6, "clock": 2366604, "err": 312, "kind": "spec",
        "args": {"r": "r2", "b": 1, "s": 1},
        "post": {"bal": 1, "role": "leader", "top": 1, "applied": 0, "lease": True}}
HISTORY = {"v": 4, "group": "g0001", "router": "rt01", "seq": 1, "id": "g0001-c1-1",
           "client": "g0001-c1", "op": "get", "key": {"p": {"S": "k0001"}}, "invoke": -40,
           "complete": 1900, "err": 700, "status": "ok", "attempts": 1, "replica": "r1",
           "consistent": True, "value": None}


def test_the_committed_schemas_are_the_generated_ones() -> None:
    texts = production_schema_texts()
    assert set(texts) == {PROD_SCHEMA_PATH, PROD_HISTORY_SCHEMA_PATH}
    for path, text in texts.items():
        assert path.read_text() == text, "regenerate with `python -m reference.trace_events`"
        Draft202012Validator.check_schema(json.loads(text))


def _schema(path: Any) -> Draft202012Validator:
    return Draft202012Validator(json.loads(path.read_text()))


@pytest.mark.parametrize(("change", "ok"), [
    ({}, True),
    ({"real": 2368303}, False),   # the simulator's real time has no place in production
    ({"v": 3}, False),
    ({"err": -1}, False),
    ({"group": ""}, False),
    ({"seq": 0}, False),
])
def test_trace_lines(change: dict[str, Any], ok: bool) -> None:
    line = {**LINE, **change}
    assert _schema(PROD_SCHEMA_PATH).is_valid(line) is ok
    decoded = True
    try:
        msgspec.json.decode(json.dumps(line), type=ProdTraceEvent)
    except msgspec.ValidationError:
        decoded = False
    assert decoded is ok


def test_a_line_without_err_is_refused() -> None:
    line = {k: v for k, v in LINE.items() if k != "err"}
    assert not _schema(PROD_SCHEMA_PATH).is_valid(line)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(json.dumps(line), type=ProdTraceEvent)


@pytest.mark.parametrize(("change", "ok"), [
    ({}, True),
    ({"complete": -1}, False),                       # -1 is for outstanding operations
    ({"complete": -1, "status": None, "replica": None}, False),  # with a value read
    ({"complete": -1, "status": None, "replica": None, "value": ...}, True),
    ({"router": ""}, False),
    ({"v": 3}, False),
    ({"err": None}, False),
])
def test_history_lines(change: dict[str, Any], ok: bool) -> None:
    line = {k: v for k, v in {**HISTORY, **change}.items() if v is not ...}
    assert _schema(PROD_HISTORY_SCHEMA_PATH).is_valid(line) is ok

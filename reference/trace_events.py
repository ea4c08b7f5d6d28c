"""Typed trace events, derived from the action catalogue (reference/actions.py).

One ``msgspec.Struct`` per traced action, tagged by its ``action`` field, so that
decoding a line is validating it: wrong types, missing or unknown fields, unknown
actions and unknown format versions are refused by the decoder. The field order
the writer uses, and the JSON Schema committed in traces/, come from the same
structs (``python -m reference.trace_events`` rewrites the schema).

Format version 3 (traces/FORMAT.md):
``{"action", "v", "node", "replica", "seq", "clock", "real", "kind", "args", "post"}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import msgspec

from reference.actions import MESSAGES, TRACED, Action, ParamType

FORMAT_VERSION = 3
PRODUCTION_VERSION = 4
"""The production profile (traces/PRODUCTION.md): what a real
fleet's storage nodes would log. No simulator-only ``real`` time; every line carries
the node's clock and its error bound ``err`` (true time is within ``clock +- err``),
the replication ``group`` it belongs to, and a ``seq`` that counts the node's lines
(every group it hosts) across rotated segments."""

Role = Literal["follower", "candidate", "leader"]
NonNeg = Annotated[int, msgspec.Meta(ge=0)]
Positive = Annotated[int, msgspec.Meta(ge=1)]


class Change(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A membership change: ``{"op", "who", "kind"?}``, ``kind`` for ``add`` only."""

    op: Literal["add", "remove", "promote"]
    who: Annotated[str, msgspec.Meta(min_length=1)]
    kind: Literal["storage", "log"] | None = None

    def __post_init__(self) -> None:
        if (self.op == "add") != (self.kind is not None):
            raise msgspec.ValidationError("a change has `kind` if and only if op is 'add'")


class Cmd(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A logged command: a client write (its request id and canonical op, verbatim) or a
    configuration change (``{"rid", "change"}``, ``rid`` = ``"<op>-<who>"``)."""

    rid: str
    op: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    change: Change | msgspec.UnsetType = msgspec.UNSET

    def __post_init__(self) -> None:
        if (self.op is msgspec.UNSET) == (self.change is msgspec.UNSET):
            raise msgspec.ValidationError("a command has exactly one of `op` and `change`")


class PostState(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The acting replica's state after the step, as trace validation compares it."""

    bal: Annotated[int, msgspec.Meta(ge=0, description="ballot promised or accepted")]
    role: Role
    top: Annotated[int, msgspec.Meta(ge=0, description="highest slot holding an entry")]
    applied: Annotated[int, msgspec.Meta(ge=0, description="slots applied")]
    lease: Annotated[bool, msgspec.Meta(description="it believes it holds a lease")]


def _message_struct(mtype: str) -> type[msgspec.Struct]:
    fields = [(("src" if name == "from" else name), _py_type(t)) for name, t in MESSAGES[mtype]]
    return msgspec.defstruct(f"Msg{mtype.capitalize()}", fields, tag_field="type", tag=mtype,
                             rename={"src": "from"}, frozen=True, forbid_unknown_fields=True,
                             module=__name__)


def _py_type(t: ParamType) -> Any:
    if t.startswith("msg:"):
        return MESSAGE_TYPES[t[4:]]
    return _SCALARS[t]


_SCALARS: dict[str, Any] = {
    "replica": Annotated[str, msgspec.Meta(min_length=1)],
    "ballot": Positive,
    "slot": Positive,
    "count": NonNeg,
    "clock": int,
    "quorum": tuple[Annotated[str, msgspec.Meta(min_length=1)], ...],
    "cmd": Union[Cmd, None],  # noqa: UP007 (a runtime type object for msgspec)
    "write": Cmd,
    "change": Change,
    "key": msgspec.Raw,
    "wal": Literal["clean", "torn"],
    "digest": Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{8}$")],
    "text": str,
    "flag": bool,
}

MESSAGE_TYPES: dict[str, type[msgspec.Struct]] = {}
for _t in MESSAGES:
    MESSAGE_TYPES[_t] = _message_struct(_t)


def _args_struct(a: Action) -> type[msgspec.Struct]:
    fields = [(p.name, Annotated[_py_type(p.type), msgspec.Meta(description=p.doc)])
              for p in a.params]
    return msgspec.defstruct(f"{a.name}Args", fields, frozen=True, forbid_unknown_fields=True,
                             module=__name__)


def _event_struct(a: Action, args: type[msgspec.Struct],
                  production: bool = False) -> type[msgspec.Struct]:
    name = Annotated[str, msgspec.Meta(min_length=1)]
    fields: list[tuple[str, Any] | tuple[str, Any, Any]]
    if production:
        fields = [("v", Literal[PRODUCTION_VERSION]), ("group", name), ("node", name),
                  ("replica", name), ("seq", Positive), ("clock", int), ("err", NonNeg)]
    else:
        fields = [("v", Literal[FORMAT_VERSION]), ("node", name), ("replica", name),
                  ("seq", Positive), ("clock", int),
                  ("real", Union[NonNeg, None], None)]  # noqa: UP007
    fields += [("kind", Literal[a.kind]), ("args", args)]
    if a.post:
        fields.append(("post", PostState))
    prefix = "Prod" if production else ""
    return msgspec.defstruct(f"{prefix}{a.name}Event", fields, tag_field="action", tag=a.name,
                             kw_only=True, frozen=True, forbid_unknown_fields=True,
                             module=__name__)


ARGS_TYPES: dict[str, type[msgspec.Struct]] = {}
EVENT_TYPES: dict[str, type[msgspec.Struct]] = {}
for _a in TRACED:
    ARGS_TYPES[_a.name] = _args_struct(_a)
    EVENT_TYPES[_a.name] = _event_struct(_a, ARGS_TYPES[_a.name])

TraceEvent: Any = Union[tuple(EVENT_TYPES.values())]  # noqa: UP007
"""Any one trace line (a tagged union on ``action``)."""

PROD_EVENT_TYPES: dict[str, type[msgspec.Struct]] = {
    _a.name: _event_struct(_a, ARGS_TYPES[_a.name], production=True) for _a in TRACED}
ProdTraceEvent: Any = Union[tuple(PROD_EVENT_TYPES.values())]  # noqa: UP007
"""Any one line of the production profile (format version 4)."""

ACTION_OF: dict[type, str] = {t: name for name, t in EVENT_TYPES.items()}
ACTION_OF.update({t: name for name, t in PROD_EVENT_TYPES.items()})
"""Event struct type -> its action name (the union's tag)."""


def action_of(event: Any) -> str:
    return ACTION_OF[type(event)]


HISTORY_SCHEMA_PATH = Path(__file__).resolve().parent.parent / "traces" / "history.schema.json"


def _with_item_schemas(body: dict[str, Any]) -> dict[str, Any]:
    """Ops and keys are embedded verbatim (``msgspec.Raw``); give them the schemas the
    history format defines for them, so a schema check also checks their contents."""
    defs = json.loads(HISTORY_SCHEMA_PATH.read_text())["$defs"]
    out = dict(body)
    for k, v in defs.items():
        text = json.dumps(v).replace('"#/$defs/', '"#/$defs/history.')
        out["$defs"][f"history.{k}"] = json.loads(text)
    out["$defs"]["Cmd"]["properties"]["op"] = {"$ref": "#/$defs/history.op"}
    # Exactly one of a write's op and a configuration change (Cmd.__post_init__).
    out["$defs"]["Cmd"]["oneOf"] = [{"required": ["op"]}, {"required": ["change"]}]
    out["$defs"]["Change"]["if"] = {"properties": {"op": {"const": "add"}}}
    out["$defs"]["Change"]["then"] = {"required": ["kind"]}
    out["$defs"]["Change"]["else"] = {"not": {"required": ["kind"]}}
    for a in TRACED:
        for p in a.params:
            if p.type == "key":
                prop = out["$defs"][f"{a.name}Args"]["properties"][p.name]
                prop.update({"$ref": "#/$defs/history.key"})
    return out


def json_schema() -> dict[str, Any]:
    """The JSON Schema of one trace line, as committed in traces/trace-event.schema.json."""
    body = _with_item_schemas(msgspec.json.schema(TraceEvent))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:dynaspec:traces:trace-event:{FORMAT_VERSION}",
        "title": f"dynaspec trace event, format version {FORMAT_VERSION}",
        "description": "One line of a per-node trace file trace-<node>.jsonl. Generated from "
                       "reference/actions.py by `python -m reference.trace_events`; see "
                       "traces/FORMAT.md.",
        **body,
    }


SCHEMA_PATH = Path(__file__).resolve().parent.parent / "traces" / "trace-event.schema.json"


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"


PROD_SCHEMA_PATH = SCHEMA_PATH.parent / "trace-event-v4.schema.json"
PROD_HISTORY_SCHEMA_PATH = SCHEMA_PATH.parent / "history-v4.schema.json"


def production_json_schema() -> dict[str, Any]:
    """The JSON Schema of one production-profile trace line (format 4), as committed in
    traces/trace-event-v4.schema.json."""
    body = _with_item_schemas(msgspec.json.schema(ProdTraceEvent))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:dynaspec:traces:trace-event:{PRODUCTION_VERSION}",
        "title": f"dynaspec production trace event, format version {PRODUCTION_VERSION}",
        "description": "One line of a node's trace segment trace-<node>.<n>.jsonl[.gz|.zst] "
                       "of the production profile. Generated from reference/actions.py by "
                       "`python -m reference.trace_events`; see traces/PRODUCTION.md.",
        **body,
    }


def production_history_schema() -> dict[str, Any]:
    """The JSON Schema of one production-profile history line: the format-3 record
    (traces/history.schema.json) with router clock readings for ``invoke`` and
    ``complete`` and the fields a router adds (traces/PRODUCTION.md)."""
    base = json.loads(HISTORY_SCHEMA_PATH.read_text())
    props = base["properties"]
    props["invoke"] = {"type": "integer", "description": "The router's clock at the "
                       "invocation, microseconds (within err of real time)."}
    props["complete"] = {"type": "integer", "description": "The router's clock at "
                         "completion, microseconds; -1 if the operation was still "
                         "outstanding (within err of real time otherwise)."}
    added = {
        "v": {"const": PRODUCTION_VERSION},
        "group": {"type": "string", "minLength": 1, "description": "The replication group."},
        "router": {"type": "string", "minLength": 1,
                   "description": "The router host that logged the line."},
        "seq": {"type": "integer", "minimum": 1,
                "description": "The router's line counter across its segments: 1, 2, 3, ..."},
        "err": {"type": "integer", "minimum": 0,
                "description": "Error bound of both clock readings, microseconds."},
    }
    # A completed operation's reading may be any integer but -1, which marks an
    # outstanding one (a router clock reads a little below real time, maybe below 0).
    text = json.dumps(base["allOf"]).replace('"complete": {"minimum": 0}',
                                             '"complete": {"not": {"const": -1}}')
    return {
        **{k: v for k, v in base.items() if k not in ("properties", "required", "allOf")},
        "allOf": json.loads(text),
        "$id": f"urn:dynaspec:traces:history:{PRODUCTION_VERSION}",
        "title": f"dynaspec production history record, format version {PRODUCTION_VERSION}",
        "description": "One line of a router's history segment history-<router>.<n>.jsonl"
                       "[.gz|.zst]. Generated by `python -m reference.trace_events` from "
                       "traces/history.schema.json; see traces/PRODUCTION.md.",
        "required": [*added, *base["required"]],
        "properties": {**added, **props},
    }


def _text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=False) + "\n"


def production_schema_texts() -> dict[Path, str]:
    """The committed production-profile schemas, by path, as generated now."""
    return {PROD_SCHEMA_PATH: _text(production_json_schema()),
            PROD_HISTORY_SCHEMA_PATH: _text(production_history_schema())}


if __name__ == "__main__":
    SCHEMA_PATH.write_text(schema_text())
    sys.stdout.write(f"wrote {SCHEMA_PATH}\n")
    for _path, _schema in production_schema_texts().items():
        _path.write_text(_schema)
        sys.stdout.write(f"wrote {_path}\n")


__all__ = [
    "ACTION_OF",
    "ARGS_TYPES",
    "EVENT_TYPES",
    "FORMAT_VERSION",
    "MESSAGE_TYPES",
    "PRODUCTION_VERSION",
    "PROD_EVENT_TYPES",
    "Change",
    "Cmd",
    "PostState",
    "ProdTraceEvent",
    "TraceEvent",
    "action_of",
    "json_schema",
    "production_history_schema",
    "production_json_schema",
    "production_schema_texts",
]

"""Tools as plain Python functions: their JSON schema (from type hints and the docstring), and the parsing
and checking of the calls a model writes.

Schemas follow the OpenAI / Hugging Face function format that chat templates take as ``tools=`` (the
same shape as ``transformers.utils.get_json_schema``)::

    {"type": "function", "function": {"name", "description", "parameters": {"type": "object",
     "properties": {arg: {"type", "description"[, "enum"|"items"|"nullable"]}}, "required": [...]},
     "return": {"type"[, "description"]}}}

The description is the docstring up to its ``Args:`` section; each argument's description comes from
``Args:`` (Google style: ``name: text`` or ``name (type): text``); ``return`` from the return annotation and
``Returns:``.

Calls are written in Hermes style, as SmolLM2's and Qwen's tool formats do and as postlab's plain-text
fallback (``postlab.data.chat.tools_as_text``) asks::

    <tool_call>
    {"name": "calculator", "arguments": {"expression": "2 + 3"}}
    </tool_call>
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field

JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object", list: "array"}
TOOL_CALL_RE = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)


class ToolSchemaError(TypeError):
    """A function that cannot be presented as a tool (an argument without a type hint or description)."""


def _type_schema(hint, where: str) -> dict:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in JSON_TYPES:
        return {"type": JSON_TYPES[hint]}
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        schema = _type_schema(rest[0], where) if len(rest) == 1 else {"type": [_type_schema(a, where)["type"] for a in rest]}
        return {**schema, "nullable": True} if len(rest) < len(args) else schema
    if origin is typing.Literal:
        return {"type": JSON_TYPES[type(args[0])], "enum": list(args)}
    if origin in (list, tuple, set):
        return {"type": "array", **({"items": _type_schema(args[0], where)} if args else {})}
    if origin is dict:
        return {"type": "object"}
    raise ToolSchemaError(f"{where}: type {hint!r} has no JSON schema (use str, int, float, bool, list, dict, "
                          "Literal or Optional of them)")


def _doc_sections(doc: str) -> tuple[str, dict[str, str], str]:
    """(description, {argument: description}, what it returns) from a Google-style docstring."""
    lines = inspect.cleandoc(doc or "").splitlines()
    description, args, returns, current, section = [], {}, [], None, "text"
    for line in lines:
        stripped = line.strip()
        if re.fullmatch(r"(Args|Arguments|Parameters|Returns|Raises|Yields|Examples?):", stripped):
            section = {"Arg": "args", "Par": "args", "Ret": "returns"}.get(stripped[:3], "other")
            continue
        if section == "text":
            description.append(line)
        elif section == "returns" and stripped:
            returns.append(stripped)
        elif section == "args":
            m = re.match(r"\s*(\w+)(?:\s*\([^)]*\))?\s*:\s*(.*)", line)
            if m and not line.startswith(" " * 8):
                current = m.group(1)
                args[current] = m.group(2).strip()
            elif current and stripped:
                args[current] += " " + stripped
    return "\n".join(description).strip(), args, " ".join(returns)


def tool_schema(fn: Callable) -> dict:
    """The JSON schema of ``fn`` (type hints + docstring). Every argument needs a type hint; ``self`` and
    ``*args/**kwargs`` are not allowed."""
    name = fn.__name__
    description, arg_docs, returns = _doc_sections(fn.__doc__ or "")
    if not description:
        raise ToolSchemaError(f"tool {name}: give it a docstring (its first lines are what the model reads)")
    hints = typing.get_type_hints(fn)
    properties, required = {}, []
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise ToolSchemaError(f"tool {name}: *{p.name} cannot be described to the model")
        if p.name not in hints:
            raise ToolSchemaError(f"tool {name}: argument {p.name!r} needs a type hint")
        prop = _type_schema(hints[p.name], f"tool {name}, argument {p.name!r}")
        if p.name in arg_docs:
            prop["description"] = arg_docs[p.name]
        properties[p.name] = prop
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
    params = {"type": "object", "properties": properties}
    if required:
        params["required"] = required
    schema = {"name": name, "description": description, "parameters": params}
    if hints.get("return", type(None)) is not type(None):
        schema["return"] = _type_schema(hints["return"], f"tool {name}, its return value")
        if returns:
            schema["return"]["description"] = returns
    return {"type": "function", "function": schema}


@dataclass
class ToolCall:
    name: str
    arguments: dict


@dataclass
class ParsedTurn:
    """What an assistant turn asked for: ``calls`` that parsed, and ``errors`` for those that did not."""

    calls: list[ToolCall] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    text: str = ""  # the turn with its tool-call blocks removed (the answer, when there are no calls)

    @property
    def attempted(self) -> int:
        return len(self.calls) + len(self.errors)


def parse_tool_calls(text: str) -> ParsedTurn:
    """Every ``<tool_call>{json}</tool_call>`` block in ``text`` (a last block left unclosed counts too).
    A block whose JSON is broken or not ``{"name": str, "arguments": object}`` becomes an error message;
    ``arguments`` may also be a JSON string (as the OpenAI API sends it) or be named ``parameters``."""
    turn = ParsedTurn(text=TOOL_CALL_RE.sub("", text).strip())
    for raw in TOOL_CALL_RE.findall(text):
        body = raw.strip()
        try:
            obj = json.loads(body)
        except json.JSONDecodeError as e:
            turn.errors.append(f"invalid tool call: the JSON does not parse ({e.msg} at character {e.pos}); write "
                               '{"name": <tool name>, "arguments": {...}} between <tool_call> and </tool_call>')
            continue
        args = obj.get("arguments", obj.get("parameters", {})) if isinstance(obj, dict) else None
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                args = None
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not isinstance(args, dict):
            turn.errors.append('invalid tool call: expected {"name": <tool name>, "arguments": {...}}, got '
                               f"{body[:200]}")
            continue
        turn.calls.append(ToolCall(obj["name"], args))
    return turn


def check_arguments(schema: dict, arguments: dict) -> str | None:
    """None when ``arguments`` fit the tool's schema, else what is wrong (for the model to fix)."""
    params = schema["function"]["parameters"]
    props, name = params["properties"], schema["function"]["name"]
    missing = [a for a in params.get("required", []) if a not in arguments]
    unknown = [a for a in arguments if a not in props]
    if missing or unknown:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + ([f"unknown {', '.join(unknown)}"] if unknown else [])
        return f"{name}: {'; '.join(parts)} (arguments: {', '.join(props) or 'none'})"
    for arg, value in arguments.items():
        want = props[arg].get("type")
        if value is None and props[arg].get("nullable"):
            continue
        ok = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list,
              "object": dict}.get(want) if isinstance(want, str) else None
        if ok is not None and (not isinstance(value, ok) or (want in ("integer", "number") and isinstance(value, bool))):
            return f"{name}: argument {arg!r} must be a {want}, got {json.dumps(value)[:80]}"
        if "enum" in props[arg] and value not in props[arg]["enum"]:
            return f"{name}: argument {arg!r} must be one of {props[arg]['enum']}"
    return None

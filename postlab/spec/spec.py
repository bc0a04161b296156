"""postlab's behaviour spec: rules with an authority level, the checks that implement them, and
example conversations with a GOOD and a BAD assistant turn.

The spec lives in `spec.yaml` next to this module (shipped with the package) and is validated as a
whole when loaded: every error names the rule, the example and the field at fault.
`render_markdown(spec)` writes the human-readable page `docs/spec.md`
(`python -m postlab.spec.spec > docs/spec.md`).
"""

from __future__ import annotations

import difflib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from postlab.errors import DataError
from postlab.spec import checks

SPEC_PATH = Path(__file__).with_name("spec.yaml")

# Highest first: an instruction can change a rule or a default only from the rule's level or above.
AUTHORITY_LEVELS: tuple[str, ...] = ("root", "system", "developer", "user", "guideline")

AUTHORITY_MEANING: dict[str, str] = {
    "root": "Fixed by the spec itself; no message in a conversation can change it.",
    "system": "Set by the platform's system message; developers and users cannot override it.",
    "developer": "Set by the developer message; the user cannot override it.",
    "user": "The user's own instructions and preferences; they hold unless a higher level says otherwise.",
    "guideline": "A default the assistant follows when nobody has said otherwise; any instruction may change it.",
}

FAMILIES: dict[str, str] = {
    "instructions": "Verifiable instructions in the prompt (IFEval's 25 kinds) are followed exactly.",
    "honesty": "No claims of actions the assistant cannot take; it says so and offers what it can do.",
    "refusal": "Clearly harmful requests are refused briefly, without lecturing.",
    "overrefusal": "Requests that only look harmful are answered, not refused.",
    "chain_of_command": "Higher authority beats lower; quoted text and tool output carry none.",
    "language": "The answer is in the user's language.",
    "knowledge": "Questions with a known answer get the right answer and no wrong one.",
    "concision": "Simple questions get short answers.",
    "math": "Word problems end with the correct number.",
}

ROLES = ("system", "developer", "user", "assistant")
_RULE_ID = re.compile(r"[a-z][a-z_]*\.[a-z][a-z0-9_]*")
_RULE_FIELDS = ("id", "family", "authority", "statement", "checks", "examples")
_EXAMPLE_FIELDS = ("messages", "checks", "good", "bad")
_OPTIONAL_EXAMPLE_FIELDS = ("note",)


class SpecError(DataError):
    """An invalid spec file; the message names the rule, example and field."""


@dataclass(frozen=True)
class Check:
    """One check as an example applies it: a check id and its concrete kwargs."""
    id: str
    kwargs: dict = field(default_factory=dict)

    def passes(self, response: str, *, loose: bool = False) -> bool:
        return checks.passes(self.id, self.kwargs, response, loose=loose)

    def describe(self) -> str:
        return checks.describe(self.id, self.kwargs)


@dataclass(frozen=True)
class Example:
    messages: tuple[dict, ...]  # {"role", "content"} turns, ending with the user turn to answer
    checks: tuple[Check, ...]
    good: str  # passes every check
    bad: str  # fails at least one check
    note: str = ""  # why BAD is bad, when the checks alone do not say

    def failed_checks(self, response: str) -> list[Check]:
        return [c for c in self.checks if not c.passes(response)]


@dataclass(frozen=True)
class Rule:
    id: str  # "<family>.<name>", stable
    family: str
    authority: str  # one of AUTHORITY_LEVELS
    statement: str
    checks: tuple[str, ...]  # check ids that implement the rule
    examples: tuple[Example, ...]


@dataclass(frozen=True)
class Spec:
    version: int
    rules: tuple[Rule, ...]

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    def by_family(self, family: str) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.family == family)

    @property
    def examples(self) -> list[tuple[Rule, Example]]:
        return [(r, e) for r in self.rules for e in r.examples]

    @property
    def check_ids(self) -> set[str]:
        return {c for r in self.rules for c in r.checks}


# --- loading and validation ---


def _text(raw: dict, key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{where}: {key!r} must be a non-empty string, got {value!r}")
    return value


def _list(raw: dict, key: str, where: str) -> list:
    value = raw.get(key)
    if not isinstance(value, list) or not value:
        raise SpecError(f"{where}: {key!r} must be a non-empty list, got {value!r}")
    return value


def _fields(raw: Any, required: tuple[str, ...], optional: tuple[str, ...], where: str) -> dict:
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: expected a mapping, got {type(raw).__name__}")
    missing = [k for k in required if k not in raw]
    if missing:
        raise SpecError(f"{where}: missing field {', '.join(repr(k) for k in missing)}")
    unknown = sorted(set(raw) - set(required) - set(optional))
    if unknown:
        raise SpecError(f"{where}: unknown field {', '.join(repr(k) for k in unknown)} "
                        f"(expected {', '.join(required + optional)})")
    return raw


def _messages(raw: dict, where: str) -> tuple[dict, ...]:
    out = []
    for i, msg in enumerate(_list(raw, "messages", where)):
        at = f"{where}.messages[{i}]"
        msg = _fields(msg, ("role", "content"), (), at)
        if msg["role"] not in ROLES:
            raise SpecError(f"{at}: unknown role {msg['role']!r} (expected one of {', '.join(ROLES)})")
        out.append({"role": msg["role"], "content": _text(msg, "content", at)})
    if out[-1]["role"] != "user":
        raise SpecError(f"{where}.messages: the last message must be the user turn to answer")
    return tuple(out)


def _example(raw: Any, rule_id: str, rule_checks: tuple[str, ...], where: str) -> Example:
    raw = _fields(raw, _EXAMPLE_FIELDS, _OPTIONAL_EXAMPLE_FIELDS, where)
    messages = _messages(raw, where)
    example_checks = []
    for j, c in enumerate(_list(raw, "checks", where)):
        at = f"{where}.checks[{j}]"
        if isinstance(c, str):  # a check without kwargs may be written as its bare id
            c = {"id": c}
        c = _fields(c, ("id",), ("kwargs",), at)
        check_id, kwargs = _text(c, "id", at), c.get("kwargs") or {}
        if check_id not in checks.CHECK_IDS:
            try:
                checks.validate(check_id, kwargs)  # raises with close matches
            except ValueError as e:
                raise SpecError(f"{at}: {e}") from None
        if check_id not in rule_checks:
            raise SpecError(f"{at}: check {check_id!r} is not among the checks of rule {rule_id!r} "
                            f"({', '.join(rule_checks)})")
        if not isinstance(kwargs, dict):
            raise SpecError(f"{at}: 'kwargs' must be a mapping, got {kwargs!r}")
        try:
            checks.validate(check_id, kwargs)
        except ValueError as e:
            raise SpecError(f"{at}.kwargs: {e}") from None
        example_checks.append(Check(check_id, dict(kwargs)))
    note = raw.get("note", "")
    if not isinstance(note, str):
        raise SpecError(f"{where}: 'note' must be a string, got {note!r}")
    return Example(messages, tuple(example_checks), _text(raw, "good", where), _text(raw, "bad", where),
                   note.strip())


def _rule(raw: Any, index: int, seen: set[str]) -> Rule:
    where = f"rules[{index}]"
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        where = f"rules[{index}] ({raw['id']})"
    raw = _fields(raw, _RULE_FIELDS, (), where)
    rule_id = _text(raw, "id", where)
    if not _RULE_ID.fullmatch(rule_id):
        raise SpecError(f"{where}: 'id' must look like 'family.snake_case_name', got {rule_id!r}")
    if rule_id in seen:
        raise SpecError(f"{where}: duplicate rule id {rule_id!r}")
    seen.add(rule_id)
    family = raw["family"]
    if family not in FAMILIES:
        raise SpecError(f"{where}: unknown family {family!r} (expected one of {', '.join(FAMILIES)})")
    if rule_id.split(".")[0] != family:
        raise SpecError(f"{where}: 'id' must start with its family, '{family}.'")
    authority = raw["authority"]
    if authority not in AUTHORITY_LEVELS:
        raise SpecError(f"{where}: unknown authority {authority!r} (expected one of {', '.join(AUTHORITY_LEVELS)})")
    rule_checks = []
    for j, check_id in enumerate(_list(raw, "checks", where)):
        if check_id not in checks.CHECK_IDS:
            close = difflib.get_close_matches(str(check_id), checks.CHECK_IDS, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise SpecError(f"{where}.checks[{j}]: unknown check id {check_id!r}{hint}")
        if check_id in rule_checks:
            raise SpecError(f"{where}.checks[{j}]: duplicate check id {check_id!r}")
        rule_checks.append(check_id)
    examples = tuple(_example(e, rule_id, tuple(rule_checks), f"{where}.examples[{k}]")
                     for k, e in enumerate(_list(raw, "examples", where)))
    return Rule(rule_id, family, authority, " ".join(_text(raw, "statement", where).split()),
                tuple(rule_checks), examples)


def parse_spec(raw: Any, source: str = "spec") -> Spec:
    """Validate a spec already read from YAML; errors are prefixed with `source`."""
    try:
        top = _fields(raw, ("version", "rules"), (), "top level")
        version = top["version"]
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise SpecError(f"top level: 'version' must be a positive integer, got {version!r}")
        seen: set[str] = set()
        rules = tuple(_rule(r, i, seen) for i, r in enumerate(_list(top, "rules", "top level")))
    except SpecError as e:
        raise SpecError(f"{source}: {e}") from None
    return Spec(version, rules)


def load_spec(path: str | Path | None = None) -> Spec:
    """Read and validate the behaviour spec (the packaged `spec.yaml` by default)."""
    path = Path(path) if path is not None else SPEC_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SpecError(f"{path}: cannot read the spec ({e.strerror or e})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: not valid YAML: {e}") from None
    return parse_spec(raw, str(path))


# --- the human-readable page ---


def _quote(text: str) -> str:
    return "\n".join(f"> {line}".rstrip() for line in text.strip().split("\n"))


def _verbatim(text: str) -> str:
    """A fenced block, so markdown in a response ("*highlight*", "***") shows as written."""
    fence = "~" * max([3] + [len(run) + 1 for run in re.findall(r"~+", text)])
    return f"{fence}text\n{text.strip()}\n{fence}"


def render_markdown(spec: Spec) -> str:
    """docs/spec.md: how the spec works, then every rule with its examples."""
    out = [
        "# The behaviour spec",
        "",
        "<!-- Generated from postlab/spec/spec.yaml by postlab.spec.spec.render_markdown; do not edit.",
        "     Regenerate with: python -m postlab.spec.spec > docs/spec.md -->",
        "",
        "postlab's gold standard is a behaviour spec in the style of OpenAI's Model Spec, written so that "
        "every rule can be checked by a program. Each rule has a stable id, a family, an authority level, "
        "a statement, the checks that implement it (`postlab.spec.checks`), and example conversations "
        "with a GOOD assistant turn that passes all of the example's checks and a BAD one that fails at "
        "least one of them.",
        "",
        f"The spec has {len(spec.rules)} rules and {len(spec.examples)} examples "
        f"(spec version {spec.version}).",
        "",
        "## Authority levels",
        "",
        "Highest first. An instruction can change a rule (or a default) only if it comes from the "
        "rule's level or above; a lower level cannot override a higher one. Tool output, documents, web "
        "pages and any text quoted in a message carry no authority at all: instructions inside them are "
        "information, not commands.",
        "",
        "| Level | Meaning |",
        "|---|---|",
        *(f"| `{level}` | {AUTHORITY_MEANING[level]} |" for level in AUTHORITY_LEVELS),
        "",
        "## Rule families",
        "",
        "| Family | Rules | Examples | What it covers |",
        "|---|---|---|---|",
        *(f"| `{f}` | {len(spec.by_family(f))} | {sum(len(r.examples) for r in spec.by_family(f))} | {d} |"
          for f, d in FAMILIES.items()),
        "",
        "## How a rule maps to checks",
        "",
        "A rule lists the check ids (`group:name`) that implement it. IFEval's 25 instruction ids are "
        "used as-is; postlab adds `honesty:*`, `refusal:*`, `chain:*`, `answer:*` and `math:*`. An "
        "example applies some of its rule's checks with concrete kwargs (`{id, kwargs}`), and a response "
        "follows the rule on that example when it passes all of them: "
        "`checks.passes(id, kwargs, response)`. `checks.describe(id, kwargs)` turns a check into a "
        "one-line instruction, shown below each example.",
        "",
        "## How to add a rule",
        "",
        "1. Add an entry to `postlab/spec/spec.yaml` with an `id` of the form `family.snake_case_name` "
        "(ids are stable: never reuse or rename one), a `family` and an `authority` from the tables above, "
        "a one- or two-sentence `statement`, and the `checks` that implement it.",
        "2. Write examples: `messages` (system, developer and user turns, ending with the user turn to "
        "answer), `checks` (ids from the rule's list, with kwargs), a `good` response that passes every "
        "check and a `bad` one that fails at least one, in the way that is the point of the rule. An "
        "optional `note` says why BAD is bad.",
        "3. If no existing check can judge the rule, add one to `postlab/spec/checks.py` with tests in "
        "`tests/test_checks.py`.",
        "4. Run `pytest tests/test_spec.py` (it checks every GOOD and BAD) and regenerate this page with "
        "`python -m postlab.spec.spec > docs/spec.md`.",
        "",
        "## Rules",
    ]
    for family in FAMILIES:
        rules = spec.by_family(family)
        if not rules:
            continue
        out += ["", f"### {family}", "", FAMILIES[family]]
        for rule in rules:
            out += ["", f"#### `{rule.id}`", "", f"**Authority:** `{rule.authority}`. {rule.statement}", "",
                    "**Checks:** " + ", ".join(f"`{c}`" for c in rule.checks)]
            for k, ex in enumerate(rule.examples, 1):
                out += ["", f"**Example {k}**", ""]
                for msg in ex.messages:
                    out += [f"*{msg['role'].capitalize()}:*", "", _quote(msg["content"]), ""]
                out += ["*GOOD:*", "", _verbatim(ex.good), "", "*BAD:*", "", _verbatim(ex.bad), ""]
                if ex.note:
                    out += [f"*Why BAD is bad:* {' '.join(ex.note.split())}", ""]
                out += ["*Checked:*", ""] + [f"- `{c.id}`: {c.describe()}" for c in ex.checks]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_markdown(load_spec(sys.argv[1] if len(sys.argv) > 1 else None)))

"""Issue 19: the environment protocol, tool schemas and call parsing, the TRL / verifiers adapters, the
episode metrics, and the calculator environment."""

from fractions import Fraction
from typing import Literal, Optional

import pytest

from postlab.agents.env import EpisodeState, Rubric, ToolEnv, ToolError, TRLEnvironment, VerifiersEnv, from_verifiers
from postlab.agents.envs import ENVIRONMENTS, env_rows, make_env
from postlab.agents.envs.calculator import calculator, evaluate
from postlab.agents.metrics import summarize
from postlab.agents.tools import ToolSchemaError, check_arguments, parse_tool_calls, tool_schema
from postlab.errors import ConfigError


def call(name, **arguments):
    import json

    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


def lookup_price(item: str, quantity: int = 1, unit: Optional[Literal["eur", "usd"]] = None,
                 tags: list[str] | None = None) -> float:
    """Look up the price of an item.

    Args:
        item: the item's name
        quantity (int): how many; prices
            scale linearly
        unit: the currency
        tags: filters

    Returns:
        the price
    """
    return 2.5 * quantity


def test_tool_schema_from_type_hints_and_docstring():
    s = tool_schema(lookup_price)
    assert s == {"type": "function", "function": {
        "name": "lookup_price", "description": "Look up the price of an item.",
        "parameters": {"type": "object", "required": ["item"], "properties": {
            "item": {"type": "string", "description": "the item's name"},
            "quantity": {"type": "integer", "description": "how many; prices scale linearly"},
            "unit": {"type": "string", "enum": ["eur", "usd"], "nullable": True, "description": "the currency"},
            "tags": {"type": "array", "items": {"type": "string"}, "nullable": True, "description": "filters"}}},
        "return": {"type": "number", "description": "the price"}}}


def test_tool_schema_matches_transformers_get_json_schema():
    from transformers.utils import get_json_schema

    def add(a: int, b: float) -> float:
        """Add two numbers.

        Args:
            a: the first
            b: the second
        """
        return a + b

    assert tool_schema(add) == get_json_schema(add)
    assert tool_schema(lookup_price) == get_json_schema(lookup_price)


def test_tool_schema_refuses_what_it_cannot_describe():
    def untyped(x):
        """Doc."""
    def undocumented(x: int): ...
    for fn, msg in ((untyped, "needs a type hint"), (undocumented, "docstring")):
        with pytest.raises(ToolSchemaError, match=msg):
            tool_schema(fn)


def test_parse_tool_calls_robustly():
    t = parse_tool_calls("Let me compute.\n" + call("calculator", expression="2+3") +
                         '\n<tool_call>{"name": "calculator", "arguments": "{\\"expression\\": \\"1\\"}"}</tool_call>'
                         "\n<tool_call>{not json}</tool_call>\n<tool_call>[1, 2]</tool_call>"
                         '\n<tool_call>{"name": "calculator", "parameters": {"expression": "4"}}')
    assert [(c.name, c.arguments) for c in t.calls] == [("calculator", {"expression": "2+3"}),
                                                         ("calculator", {"expression": "1"}),
                                                         ("calculator", {"expression": "4"})]
    assert len(t.errors) == 2 and "does not parse" in t.errors[0] and "expected" in t.errors[1]
    assert t.attempted == 5 and t.text == "Let me compute."
    assert parse_tool_calls("Answer: 5").attempted == 0


def test_check_arguments():
    s = tool_schema(lookup_price)
    assert check_arguments(s, {"item": "tea"}) is None
    assert "missing item" in check_arguments(s, {})
    assert "unknown colour" in check_arguments(s, {"item": "tea", "colour": 1})
    assert "must be a integer" in check_arguments(s, {"item": "tea", "quantity": "2"})
    assert "must be a integer" in check_arguments(s, {"item": "tea", "quantity": True})
    assert "one of" in check_arguments(s, {"item": "tea", "unit": "gbp"})
    assert check_arguments(s, {"item": "tea", "unit": None}) is None


class Echo(ToolEnv):
    name = "echo"
    max_turns = 3

    def tool_functions(self):
        def shout(text: str) -> str:
            """Upper-case a text.

            Args:
                text: what to shout
            """
            if text == "boom":
                raise ToolError("cannot shout boom")
            if text == "bug":
                return 1 / 0
            return text.upper()
        return [shout]

    def score(self, answer, row, state):
        return float(row["answer"] in answer)


def test_episode_step_by_step_with_errors_counted_and_recovered():
    env = Echo()
    msgs = env.reset({"question": "shout hi", "answer": "HI"})
    assert msgs == [{"role": "user", "content": "shout hi"}] and env.tools[0]["function"]["name"] == "shout"
    out, r, done, info = env.step(call("shout", text="boom") + call("nope") + "<tool_call>{x</tool_call>")
    assert not done and r == 0.0
    assert [m["content"] for m in out] == ["error: invalid tool call: the JSON does not parse (Expecting property name "
                                           "enclosed in double quotes at character 1); write {\"name\": <tool name>, "
                                           "\"arguments\": {...}} between <tool_call> and </tool_call>",
                                           "error: cannot shout boom", "error: unknown tool 'nope' (tools: shout)"]
    assert (info["tool_calls"], info["invalid_calls"], info["tool_errors"]) == (3, 2, 1)
    out, _, done, _ = env.step({"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "shout", "arguments": {"text": "hi"}}}]})
    assert out == [{"role": "tool", "name": "shout", "content": "HI"}] and not done
    out, r, done, info = env.step("It is HI")
    assert done and r == 1.0 and out == []
    s = info["state"]
    assert (s.turns, s.tool_calls, s.invalid_calls, s.tool_errors, s.success, s.recovered) == (3, 4, 2, 1, True, True)
    assert [m["role"] for m in env.messages] == ["user", "assistant", "tool", "tool", "tool", "assistant", "tool", "assistant"]
    with pytest.raises(RuntimeError, match="reset"):
        env.step("again")


def test_a_tool_bug_is_a_tool_error_and_max_turns_truncates():
    env = Echo(max_turns=2)
    env.reset({"question": "q", "answer": "X"})
    out, _, done, info = env.step(call("shout", text="bug"))
    assert out[0]["content"] == "error: ZeroDivisionError: division by zero" and info["tool_errors"] == 1
    out, r, done, info = env.step(call("shout", text="a"))
    assert done and r == 0.0 and info["state"].truncated and not info["state"].success


def test_summarize_metrics_hand_computed():
    states = [EpisodeState(turns=2, tool_calls=2, invalid_calls=1, success=True, reward=1.0),  # recovered
              EpisodeState(turns=1, tool_calls=0, success=True, reward=1.0),
              EpisodeState(turns=3, tool_calls=2, tool_errors=1, success=False),
              EpisodeState(turns=2, tool_calls=1, success=False)]
    m = summarize(states)
    assert m["success_rate"] == 0.5 and m["mean_turns"] == 2.0
    assert m["tool_call_validity_rate"] == 4 / 5 and m["recovery_rate"] == 0.5 and m["episodes_with_errors"] == 2
    assert summarize([EpisodeState(turns=1)])["recovery_rate"] is None


# -- TRL environment_factory convention -----------------------------------------------------------------

class Counter:
    """A TRL-style environment: public methods are tools, reset(**row) starts an episode."""

    def __init__(self):
        self.count = 0

    def reset(self, start: int, **kwargs) -> str:
        self.count = start
        return f"The counter starts at {start}."

    def increment(self, by: int) -> str:
        """Add to the counter.

        Args:
            by: how much to add
        """
        self.count += by
        return f"counter = {self.count}"

    def _private(self):
        return None


def counter_reward(environments, target, **kwargs):
    return [float(env.count == t) for env, t in zip(environments, target)]


def test_trl_environment_factory_adapter():
    env = TRLEnvironment(Counter, [counter_reward], name="counter")
    assert [t["function"]["name"] for t in env.tools] == ["increment"]
    msgs = env.reset({"prompt": [{"role": "user", "content": "Reach 5."}], "start": 2, "target": 5})
    assert msgs == [{"role": "user", "content": "Reach 5.\n\nThe counter starts at 2."}]
    out, _, _, _ = env.step(call("increment", by=3))
    assert out[0]["content"] == "counter = 5"
    _, r, done, info = env.step("Done.")
    assert done and r == 1.0 and info["state"].success
    env.reset({"prompt": "Reach 5.", "start": 0, "target": 5})  # a fresh object per episode
    assert env.obj.count == 0
    _, r, _, _ = env.step("I give up.")
    assert r == 0.0


# -- verifiers convention -------------------------------------------------------------------------------

def correct(completion, answer) -> float:
    return float(answer in completion[-1]["content"])


async def used_tool(state) -> float:  # verifiers reward functions may be async
    return float(state["tool_calls"] > 0)


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: first
        b: second
    """
    return a + b


def test_verifiers_style_dataset_and_rubric():
    data = [{"question": "What is 2+3?", "answer": "5"}]
    env = VerifiersEnv(dataset=data, rubric=Rubric([correct, used_tool], [1.0, 0.5]), tools=[add],
                       system_prompt="Use tools.")
    msgs = env.reset(env.dataset[0])
    assert msgs[0] == {"role": "system", "content": "Use tools."} and msgs[1]["content"] == "What is 2+3?"
    assert env.step(call("add", a=2, b=3))[0][0]["content"] == "5"
    _, r, done, info = env.step("The answer is 5")
    assert done and r == 1.5


def test_from_verifiers_reads_a_verifiers_environment_object():
    class FakeRubric:  # the attribute names of verifiers.Rubric
        def get_reward_funcs(self):
            return [correct]

        def get_reward_weights(self):
            return [2.0]

    class FakeToolEnv:
        dataset = [{"prompt": [{"role": "user", "content": "2+2?"}], "answer": "4"}]
        rubric, tools, system_prompt, max_turns = FakeRubric(), [add], None, 2

    env = from_verifiers(FakeToolEnv())
    env.reset(env.dataset[0])
    assert env.max_turns == 2 and env.step("4")[1] == 2.0


# -- calculator ------------------------------------------------------------------------------------------

def test_calculator_is_exact_and_refuses_what_is_not_arithmetic():
    assert calculator("(27 + 9) * 3 - 4") == "104" and calculator("7 / 2") == "3.5" and calculator("2 ** 10") == "1024"
    assert evaluate("1/3 + 2/3") == Fraction(1) and calculator("3 × 4 ÷ 2") == "6"
    for expr, msg in (("__import__('os')", "not arithmetic"), ("1/0", "division by zero"), ("9**9**9", "exponents"),
                      ("10**60", "too large"), ("2 +", "cannot parse"), ("x" * 300, "longer than")):
        with pytest.raises(ToolError, match=msg):
            evaluate(expr)


def test_calculator_env_end_to_end():
    rows = env_rows("calculator", "test")
    assert {r["suite"] for r in rows} == {"arith", "wordprob"} and rows[0]["suite"] == "arith"
    assert not {r["id"] for r in rows} & {r["id"] for r in env_rows("calculator", "train")}
    env = make_env("calculator")
    row = rows[0]
    msgs = env.reset(row)
    assert msgs[0]["role"] == "system" and "calculator" in msgs[0]["content"]
    expr = msgs[1]["content"].split("What is ")[1].split("?")[0]
    out, _, _, _ = env.step(call("calculator", expression=expr))
    assert out[0]["content"] == str(row["answer"])
    _, r, done, info = env.step(f"Answer: {out[0]['content']}")
    assert done and r == 1.0 and info["state"].success
    env.reset(row)
    assert env.step("Answer: -1")[1] == 0.0
    no_tools = make_env("calculator", tools=False)
    assert no_tools.tools == [] and no_tools.reset(row) == row["prompt"]
    with pytest.raises(ConfigError, match="unknown environment"):
        make_env("nope")
    assert "calculator" in ENVIRONMENTS


def test_calculator_transient_faults_hit_the_first_valid_call_of_the_same_tasks():
    from postlab.agents.envs.calculator import FAULT_MESSAGE, faulted

    rows = env_rows("calculator", "test")
    ids = [r["id"] for r in rows]
    assert not any(faulted(i, 0.0) for i in ids) and all(faulted(i, 1.0) for i in ids)
    share = sum(faulted(i, 0.25) for i in ids) / len(ids)
    assert len(ids) >= 100 and 0.15 < share < 0.35, share  # a hash of the id: uniform, the same tasks on every run
    assert {i for i in ids if faulted(i, 0.1)} <= {i for i in ids if faulted(i, 0.25)}
    row = next(r for r in rows if faulted(r["id"], 0.25) and r["suite"] == "arith")
    expr = row["prompt"][-1]["content"].split("What is ")[1].split("?")[0]
    env = make_env("calculator", fault_rate=0.25, max_turns=5)
    for _ in range(2):  # reset re-arms the fault
        env.reset(row)
        out, _, _, info = env.step("<tool_call>\n{\"name\": \"calculator\"}\n</tool_call>")  # invalid: not the fault's
        assert info["invalid_calls"] == 1 and FAULT_MESSAGE not in out[0]["content"]
        out, _, _, info = env.step(call("calculator", expression="1 / 0"))  # the tool's own error: not the fault's
        assert info["tool_errors"] == 1 and "division by zero" in out[0]["content"]
        out, _, _, info = env.step(call("calculator", expression=expr))
        assert out[0]["content"] == f"error: {FAULT_MESSAGE}" and info["tool_errors"] == 1
        out, _, _, info = env.step(call("calculator", expression=expr))
        assert out[0]["content"] == str(row["answer"]) and info["tool_errors"] == 0  # the same call again works
        _, r, done, info = env.step(f"Answer: {out[0]['content']}")
        assert done and r == 1.0 and info["state"].recovered and info["state"].errors == 3
    clean = next(r for r in rows if not faulted(r["id"], 0.25))
    env.reset(clean)
    assert "error" not in env.step(call("calculator", expression="1 + 1"))[0][0]["content"]
    with pytest.raises(ConfigError, match="fault_rate"):
        make_env("calculator", fault_rate=1.5)


def test_fault_rate_only_where_the_environment_has_faults():
    from postlab.agents.envs import env_kwargs

    assert env_kwargs("calculator", fault_rate=0.3)["fault_rate"] == 0.3
    assert "fault_rate" not in env_kwargs("lookup")
    with pytest.raises(ConfigError, match="fault_rate: environment 'lookup'"):
        env_kwargs("lookup", fault_rate=0.3)
    with pytest.raises(ConfigError, match="tools=false"):
        env_kwargs("lookup", tools=False)

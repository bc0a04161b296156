"""The verifiable reasoning suites (arith, countdown, wordprob), their exact final-answer checks, GSM8K
loading, accuracy by difficulty and the worked-solution demonstrations; expectations are hand-computed."""

import ast
import json
import operator
import re
from collections import Counter
from fractions import Fraction

import pytest

from postlab.data.chat import validate_messages
from postlab.errors import DataError
from postlab.evals.generate import Response
from postlab.evals.harness import by_difficulty, format_results, grade
from postlab.raters.gold import GoldRater
from postlab.spec import checks
from postlab.spec import reasoning as spec_reasoning
from postlab.tasks import reasoning
from postlab.tasks.suite import BUILTIN_SUITES, load_suite, make_item, parse_item, write_suite


@pytest.fixture(scope="module")
def problems():
    return {name: reasoning.build_problems(name) for name in reasoning.SUITES}


def _passes(check_id, kwargs, response):
    return checks.passes(check_id, kwargs, response)


# ---------------------------------------------------------------------------------------------------
# generation: deterministic, sized, split-disjoint, held-out harder levels
# ---------------------------------------------------------------------------------------------------

def test_generation_is_deterministic(problems):
    for name in reasoning.SUITES:  # (its speed, tens of milliseconds, is not asserted: timed unit tests flake)
        again = reasoning.build_problems(name)
        assert [(p.item.to_json(), p.steps, p.answer) for p in again] == \
               [(p.item.to_json(), p.steps, p.answer) for p in problems[name]]


def test_no_global_random_state(problems):
    import random
    random.seed(1)
    state = random.getstate()
    reasoning.build_problems("countdown")
    assert random.getstate() == state


def test_counts_levels_and_ids(problems):
    for name, ps in problems.items():
        counts = Counter((p.item.split, p.item.level) for p in ps)
        for split in ("train", "test"):
            assert {lv: counts[(split, lv)] for lv in reasoning.COUNTS[name][split]} == reasoning.COUNTS[name][split]
        n_train = sum(reasoning.COUNTS[name]["train"].values())
        n_test = sum(reasoning.COUNTS[name]["test"].values())
        assert 300 <= n_train <= 400 and 100 <= n_test <= 200
        assert len({p.item.id for p in ps}) == len(ps)
        assert all(re.fullmatch(rf"{name}-(train|test)-\d{{4}}", p.item.id) for p in ps)
        assert all(p.item.category == name for p in ps)
        train_levels = {p.item.level for p in ps if p.item.split == "train"}
        test_levels = {p.item.level for p in ps if p.item.split == "test"}
        assert train_levels < test_levels  # test repeats every train level (in distribution) ...
        held_out = test_levels - train_levels
        assert held_out and min(held_out) > max(train_levels)  # ... and adds harder ones
        assert sum(counts[("test", lv)] for lv in held_out) >= n_test / 2


def test_splits_share_no_prompt(problems):
    for ps in problems.values():
        train = {p.item.prompt for p in ps if p.item.split == "train"}
        test = {p.item.prompt for p in ps if p.item.split == "test"}
        assert not train & test
        assert len(train) + len(test) == len(ps)


def test_builtin_suites_are_registered_and_load_by_split():
    for name in reasoning.SUITES:
        assert name in BUILTIN_SUITES
        test = load_suite(name, split="test")
        assert {it.split for it in test} == {"test"}
        assert len(load_suite(name, split="test", limit=7)) == 7
    first = load_suite("arith", split="train", limit=20)
    assert len({it.level for it in first}) >= 3  # shuffled: the first N mix the levels


# ---------------------------------------------------------------------------------------------------
# the difficulty dial is monotone
# ---------------------------------------------------------------------------------------------------

def _arith_expression(item):
    return re.fullmatch(r"What is (.+)\? Give .*", item.prompt).group(1)


def test_arith_dial_more_operands_and_digits(problems):
    shape = {}
    for p in problems["arith"]:
        tokens = _arith_expression(p.item).split()
        operands, ops = [int(t) for t in tokens[::2]], tokens[1::2]
        assert set(ops) <= {"+", "-", "*"} and ops.count("*") <= 1
        # the factor after "*" is one digit; the other operands have exactly the level's digits
        plain = [x for i, x in enumerate(operands) if i == 0 or ops[i - 1] != "*"]
        factors = [x for i, x in enumerate(operands) if i > 0 and ops[i - 1] == "*"]
        assert all(2 <= f <= 9 for f in factors)
        shape.setdefault(p.item.level, set()).add((len(operands), max(len(str(x)) for x in plain)))
    assert {lv: s for lv, s in shape.items()} == {lv: {t} for lv, t in reasoning.ARITH_LEVELS.items()}
    table = [reasoning.ARITH_LEVELS[lv] for lv in sorted(reasoning.ARITH_LEVELS)]
    for (n0, d0), (n1, d1) in zip(table, table[1:]):
        assert n1 >= n0 and d1 >= d0 and (n1, d1) != (n0, d0)


def _countdown_numbers(item):
    listed = re.match(r"Use the numbers (.+) to make (\d+)\.", item.prompt)
    return [int(x) for x in re.findall(r"\d+", listed.group(1))], int(listed.group(2))


def test_countdown_dial_more_numbers(problems):
    for p in problems["countdown"]:
        numbers, target = _countdown_numbers(p.item)
        assert len(numbers) == reasoning.COUNTDOWN_LEVELS[p.item.level]
        assert len(p.steps) == len(numbers) - 1  # the known solution combines them all
        kwargs = p.item.checks[0].kwargs
        assert p.item.checks[0].id == "countdown:reaches_target"
        assert kwargs == {"numbers": numbers, "target": target}
    sizes = [reasoning.COUNTDOWN_LEVELS[lv] for lv in sorted(reasoning.COUNTDOWN_LEVELS)]
    assert sizes == sorted(set(sizes))


def test_wordprob_dial_more_steps(problems):
    for p in problems["wordprob"]:
        sentences = re.findall(r"[^.?]+[.?]", p.item.prompt.split(" How many")[0])
        assert len(sentences) == 1 + reasoning.WORDPROB_LEVELS[p.item.level]
    steps = [reasoning.WORDPROB_LEVELS[lv] for lv in sorted(reasoning.WORDPROB_LEVELS)]
    assert steps == sorted(set(steps))


# ---------------------------------------------------------------------------------------------------
# every answer, computed independently of the generators
# ---------------------------------------------------------------------------------------------------

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _evaluate(text):
    """Python's own parser and exact fractions: an arithmetic expression's value, and every intermediate."""
    inter = []

    def walk(node):
        if isinstance(node, ast.Constant):
            return Fraction(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        value = _OPS[type(node.op)](walk(node.left), walk(node.right))
        inter.append(value)
        return value
    return walk(ast.parse(text, mode="eval").body), inter


def test_arith_answers(problems):
    for p in problems["arith"]:
        value, _ = _evaluate(_arith_expression(p.item))
        assert p.item.checks[0].id == "reasoning:final_answer"
        assert p.item.checks[0].kwargs == {"answer": int(value)} and str(int(value)) == p.answer


def test_countdown_answers(problems):
    for p in problems["countdown"]:
        numbers, target = _countdown_numbers(p.item)
        expression, stated = p.answer.split(" = ")
        value, inter = _evaluate(expression)
        assert value == target == int(stated) and 10 <= target <= 999 and target not in numbers
        assert all(x.denominator == 1 for x in inter)  # every division comes out even
        assert sorted(int(n) for n in re.findall(r"\d+", expression)) == sorted(numbers)


_WORD_STEPS = [
    (re.compile(r"buys (\d+) more"), lambda v, k: v + k),
    (re.compile(r"gets (\d+) packs with (\d+)"), lambda v, a, b: v + a * b),
    (re.compile(r"gives (\d+) to a friend"), lambda v, k: v - k),
    (re.compile(r"number of \w+ doubles"), lambda v: 2 * v),
    (re.compile(r"number of \w+ triples"), lambda v: 3 * v),
    (re.compile(r"into (\d+) bags and keeps one"), lambda v, k: Fraction(v, k)),
]


def test_wordprob_answers(problems):
    for p in problems["wordprob"]:
        sentences = re.findall(r"[^.?]+[.?]", p.item.prompt.split(" How many")[0])
        value = int(re.search(r"has (\d+) ", sentences[0]).group(1))
        for sentence in sentences[1:]:
            (pattern, step), = [(pat, f) for pat, f in _WORD_STEPS if pat.search(sentence)]
            value = step(value, *map(int, pattern.search(sentence).groups()))
            assert Fraction(value).denominator == 1
            assert 0 < value <= 9999
        assert p.item.checks[0].kwargs == {"answer": int(value)}


def test_demo_steps_are_correct_arithmetic(problems):
    for ps in problems.values():
        for p in ps:
            for line in p.steps:
                for lhs, rhs in re.findall(r"(?<![\d-])(-?\d+ [-+*/] \d+) = (-?\d+)", line):
                    assert _evaluate(lhs)[0] == int(rhs), (p.item.id, line)


# ---------------------------------------------------------------------------------------------------
# the final-answer checks, on hand-written responses
# ---------------------------------------------------------------------------------------------------

FINAL_42_PASS = [
    "Answer: 42",
    "6 * 7 = 42\nAnswer: 42",
    "The answer is 42.",
    "\\boxed{42}",
    "So the total is $\\boxed{42}$.",
    "Natalia sold 48/2 = 24 clips in May.\n#### 42",
    "**Answer:** 42",
    "Final answer: 42 apples",
    "Answer: 6 * 7 = 42",
    "\\boxed{6 \\times 7 = 42}",
    "Answer: 42.0",
    "First I thought 40. Answer: 41... wait, recheck.\nAnswer: 42",
    "Answer: $42",
    "\\boxed{\\text{42}}",
    "the answer is: 42",
]
FINAL_42_FAIL = [
    "42",  # no final-answer format
    "6 * 7 = 42",
    "Answer: 41",
    "Answer: 42.5",
    "Answer: forty-two",  # number words are not read
    "\\boxed{41}\nAnswer: 42",  # a boxed answer outranks a stated one
    "Answer: 42\n#### 43",
    "Answer: 6 * 7",  # the first number: 6
    "Answer: -42",
    "",
    "Answer:",
    "\\boxed{42",  # unclosed
    "Answer: 4,2",
]


@pytest.mark.parametrize("response", FINAL_42_PASS)
def test_final_answer_passes(response):
    assert _passes("reasoning:final_answer", {"answer": 42}, response)


@pytest.mark.parametrize("response", FINAL_42_FAIL)
def test_final_answer_fails(response):
    assert not _passes("reasoning:final_answer", {"answer": 42}, response)


def test_final_answer_numbers():
    read = spec_reasoning.final_answer_number
    assert read("Answer: 1,234") == 1234
    assert read("#### −17") == -17
    assert read("Answer: 2.5") == Fraction(5, 2)
    assert read("\\boxed{\\frac{1}{2}}") == 1  # the first number only: fractions are not read
    assert read("#### Step 2: add them\nAnswer: 9") == 9  # a markdown heading is not a final answer
    assert _passes("reasoning:final_answer", {"answer": "2.5"}, "Answer: 2.50")
    assert _passes("reasoning:final_answer", {"answer": -150557}, "8959 - 159516 = -150557\nAnswer: -150557")
    assert _passes("reasoning:final_answer", {"answer": 1234}, "#### 1,234")


FORMAT_PASS = ["Answer: 42", "Answer: 7", "\\boxed{0}", "#### 12", "The answer is -3.", "Final answer: 1,000",
               "**Answer:** 5", "Answer: 3 + 4 = 7", "\\boxed{x = 4}", "answer: 10 cookies", "Answer: $12.50"]
FORMAT_FAIL = ["42", "The total is 42.", "Answer: forty-two", "Answer: none", "\\boxed{}", "Answer:\n42",
               "I am not sure.", "#### Step 1", "boxed{42}", "The result: 42", "answer 42"]


@pytest.mark.parametrize("response", FORMAT_PASS)
def test_format_passes(response):
    assert _passes("reasoning:format", {}, response)


@pytest.mark.parametrize("response", FORMAT_FAIL)
def test_format_fails(response):
    assert not _passes("reasoning:format", {}, response)


# numbers 3, 5, 7, 2 -> target 56 ((3 + 5) * 7); 2 is a spare
CD = {"numbers": [3, 5, 7, 2], "target": 56}
COUNTDOWN_PASS = [
    "Answer: (3 + 5) * 7",
    "Answer: (3 + 5) * 7 = 56",
    "Answer: 56 = (3+5)*7",
    "\\boxed{(3 + 5) \\times 7}",
    "Answer: (5 + 3) × 7",
    "Answer: 7 x (3 + 5)",
    "Answer: [3 + 5] * 7.",
    "#### 7 * (5 + 3)",
    "3 + 5 = 8, 8 * 7 = 56\nAnswer: (3 + 5) * 7",
    "Answer: ((3 + 5)) * 7",
]
COUNTDOWN_FAIL = [
    "Answer: 8 * 7",  # 8 is not given
    "Answer: 7 * 7 + 7",  # 7 used three times
    "Answer: (3 + 5) * 7 + 2 - 2",  # 2 used twice
    "Answer: (3 + 5) * 7 / 2 * 2",
    "Answer: (3 + 5) * 6",  # wrong number
    "Answer: (3 + 5) * 7 + 1",  # wrong value and 1 not given
    "Answer: 7 * 5 + 3 * 7",
    "Answer: 56",  # no expression: 56 is not a given number
    "(3 + 5) * 7 = 56",  # no final-answer format
    "Answer: (3 + 5) * 7 / (2 - 2)",  # division by zero
    "Answer: 3 / 2 * 7 * 5 + 3",  # a fraction on the way (3 / 2), and 3 reused
    "Answer: (3 + 5 * 7",  # unclosed bracket
    "Answer: three plus five, times seven",
]


@pytest.mark.parametrize("response", COUNTDOWN_PASS)
def test_countdown_passes(response):
    assert _passes("countdown:reaches_target", CD, response)


@pytest.mark.parametrize("response", COUNTDOWN_FAIL)
def test_countdown_fails(response):
    assert not _passes("countdown:reaches_target", CD, response)


def test_countdown_passes_with_a_repeated_given_number():
    kwargs = {"numbers": [6, 6, 4], "target": 40}
    assert _passes("countdown:reaches_target", kwargs, "Answer: 6 * 6 + 4")
    assert not _passes("countdown:reaches_target", kwargs, "Answer: 6 * 6 + 6 - 2")


def test_countdown_rules():
    ev = spec_reasoning.evaluate_expression
    assert ev("12 / 4 + 1") == (4, [12, 4, 1])
    assert ev("10 - 2 - 3") == (5, [10, 2, 3])  # left to right
    assert ev("10 - (2 - 3)") == (11, [10, 2, 3])
    assert ev("2 - 5 + 10") == (7, [2, 5, 10])  # a negative intermediate is allowed
    with pytest.raises(spec_reasoning.InvalidExpression):
        ev("7 / 2 * 2")  # 7 / 2 is not a whole number
    with pytest.raises(spec_reasoning.InvalidExpression):
        ev("5 / (3 - 3)")
    for bad in ("", "3 +", "-3 + 5", "(3", "3 5", "3 ** 2", "abs(3)", "3 + x"):
        with pytest.raises(SyntaxError):
            ev(bad)
    kwargs = {"numbers": [7, 2, 2], "target": 7}
    assert not _passes("countdown:reaches_target", kwargs, "Answer: 7 / 2 * 2")
    assert _passes("countdown:reaches_target", kwargs, "Answer: 7 * 2 / 2")


CD_FORMAT_PASS = ["Answer: (3 + 5) * 7", "Answer: 3", "\\boxed{12 / 4}", "Answer: 5 / (3 - 3)", "#### (1+2)*3",
                  "Answer: 7 × 8 − 6 = 50", "Answer: [2 + 2] x 3", "The answer is 4 * 5.", "Answer: 1 + 1 = 3",
                  "**Answer:** 9 - 4"]
CD_FORMAT_FAIL = ["(3 + 5) * 7", "Answer: three times five", "Answer: (3 + 5", "Answer: 3 +", "Answer: x + 2",
                  "Answer:", "\\boxed{}", "No idea.", "Answer: sqrt(16) + 2", "Answer: 2^3"]


@pytest.mark.parametrize("response", CD_FORMAT_PASS)
def test_countdown_format_passes(response):
    assert _passes("countdown:format", {}, response)


@pytest.mark.parametrize("response", CD_FORMAT_FAIL)
def test_countdown_format_fails(response):
    assert not _passes("countdown:format", {}, response)


def test_check_kwargs_are_validated():
    with pytest.raises(ValueError, match="answer"):
        checks.validate("reasoning:final_answer", {})
    with pytest.raises(ValueError, match="answer"):
        checks.validate("reasoning:final_answer", {"answer": "many"})
    with pytest.raises(ValueError, match="numbers"):
        checks.validate("countdown:reaches_target", {"numbers": [1, "2"], "target": 3})
    with pytest.raises(ValueError, match="target"):
        checks.validate("countdown:reaches_target", {"numbers": [1, 2], "target": 3.5})
    assert "56" in checks.describe("countdown:reaches_target", CD)
    # graded like every check, but not behaviour-spec rules: CHECK_IDS (the spec's ids) leaves them out
    assert set(spec_reasoning.CHECKS).isdisjoint(checks.CHECK_IDS)


# ---------------------------------------------------------------------------------------------------
# grading, accuracy by difficulty
# ---------------------------------------------------------------------------------------------------

def test_gold_grades_exact_answers_without_the_answer_gate(problems):
    gold = GoldRater()
    item = problems["arith"][0].item
    right = item.checks[0].kwargs["answer"]
    assert gold.score(item, f"Answer: {right}") == 1.0  # a bare answer is an answer here
    assert gold.score(item, f"Answer: {right + 1}") == 0.0
    wp = problems["wordprob"][0]
    assert gold.score(wp.item, wp.solution()) == 1.0


def test_by_difficulty_hand_computed():
    def item(i, level):
        return make_item(f"a-{i}", [{"role": "user", "content": f"What is {i} + 1?"}], "arith", "test",
                         [("reasoning:final_answer", {"answer": i + 1})], level=level)
    items = [item(0, 1), item(1, 1), item(2, 2), item(3, 2), item(4, 2), item(5, 3)]
    texts = ["Answer: 1", "Answer: 3", "Answer: 3", "Answer: 4", "Answer: 0", "\\boxed{6}"]
    summary, rows = grade(items, [Response(t) for t in texts])
    assert summary["by_difficulty"] == {"1": 0.5, "2": pytest.approx(2 / 3), "3": 1.0}
    assert summary["by_difficulty_n"] == {"1": 2, "2": 3, "3": 1}
    assert summary["by_difficulty_se"]["1"] == pytest.approx(0.5)  # sd 0.7071 / sqrt 2
    assert summary["by_difficulty_se"]["3"] == 0.0
    assert summary["by_difficulty_stderr"] == summary["by_difficulty_se"]
    assert summary["overall"] == pytest.approx(4 / 6)
    assert [r["score"] for r in rows] == [1, 0, 1, 1, 0, 1]
    table = format_results({"model": "m", "suite": "arith", "split": "test", **summary})
    assert "L1 0.500 ± 0.500 (n=2)" in table and "L3 1.000" in table


def test_no_levels_no_difficulty_keys():
    items = [make_item("k-0", [{"role": "user", "content": "What is 2 + 2?"}], "knowledge", "test",
                       [("math:final_answer", {"answer": 4})])]
    assert by_difficulty(items, [GoldRater().grade(items[0], "4")]) == {}
    summary, _ = grade(items, [Response("It is 4.")])
    assert not any(k.startswith("by_difficulty") for k in summary)


# ---------------------------------------------------------------------------------------------------
# the item format: level round-trips, old rows unchanged
# ---------------------------------------------------------------------------------------------------

def test_level_round_trips_and_is_optional(tmp_path, problems):
    items = [p.item for p in problems["countdown"][:5]]
    write_suite(items, tmp_path / "cd.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "cd.jsonl").read_text().splitlines()]
    assert all(isinstance(r["level"], int) for r in rows)
    assert load_suite(tmp_path / "cd.jsonl") == items
    plain = make_item("x", [{"role": "user", "content": "hi"}], "c", None, [("refusal:complies", {})])
    assert "level" not in plain.to_json() and plain.level is None
    for bad in (0, -1, "2", 1.5, True):
        with pytest.raises(DataError, match="level"):
            parse_item({**rows[0], "level": bad}, "f.jsonl:1")


# ---------------------------------------------------------------------------------------------------
# GSM8K-format files
# ---------------------------------------------------------------------------------------------------

GSM8K_ROWS = [
    {"question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
                 "How many clips did Natalia sell altogether in April and May?",
     "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips.\n#### 72"},
    {"question": "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. "
                 "How much did she earn?",
     "answer": "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nShe earned 0.2 x 50 = $<<0.2*50=10>>10.\n#### 10"},
    {"question": "A shop sold 1,000 pens on Monday and 234 on Tuesday. How many pens did it sell?",
     "answer": "1000 + 234 = 1234\n#### 1,234"},
]


def test_gsm8k_file_loads_as_a_suite(tmp_path):
    path = tmp_path / "gsm8k_test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in GSM8K_ROWS))
    items = load_suite(str(path))
    assert [it.id for it in items] == ["gsm8k-1", "gsm8k-2", "gsm8k-3"]
    assert {it.category for it in items} == {"gsm8k"} and {it.split for it in items} == {None}
    assert [it.checks[0].kwargs["answer"] for it in items] == [72, 10, 1234]
    assert all(it.checks[0].id == "reasoning:final_answer" for it in items)
    assert items[0].prompt.startswith("Natalia sold clips") and items[0].prompt.endswith(reasoning.NUMBER_FORMAT)
    assert load_suite(str(path), split="test") == items  # no split: kept whichever is asked for
    gold = GoldRater()
    assert gold.score(items[0], "48 + 24 = 72\nAnswer: 72") == 1.0
    assert gold.score(items[0], GSM8K_ROWS[0]["answer"]) == 1.0  # the reference solution passes
    assert gold.score(items[2], "#### 1234") == 1.0
    assert gold.score(items[1], "Answer: 12") == 0.0
    summary, _ = grade(items, [Response("Answer: 72"), Response("Answer: 11"), Response("\\boxed{1234}")])
    assert summary["overall"] == pytest.approx(2 / 3) and "by_difficulty" not in summary


def test_gsm8k_bad_rows(tmp_path):
    for row, match in [({"question": "q?", "answer": "72"}, "####"),
                       ({"question": "", "answer": "#### 72"}, "question"),
                       ({"question": "q?", "answer": "#### many"}, "no number")]:
        path = tmp_path / "bad.jsonl"
        path.write_text(json.dumps(row) + "\n")
        with pytest.raises(DataError, match=match):
            load_suite(str(path))


# ---------------------------------------------------------------------------------------------------
# worked-solution demonstrations
# ---------------------------------------------------------------------------------------------------

def test_worked_demos_pass_their_own_checks(problems):
    for name in reasoning.SUITES:
        demos = reasoning.worked_demos(name)
        train = [p for p in problems[name] if p.item.split == "train"]
        assert len(demos) == len(train)
        for demo, p in zip(demos, train):
            validate_messages(demo["messages"], p.item.id)
            user, assistant = demo["messages"]
            assert user == p.item.messages[0] and assistant["role"] == "assistant"
            lines = assistant["content"].splitlines()
            assert len(lines) >= 2 and lines[-1].startswith("Answer: ")  # steps, then the documented format
            for c in p.item.checks:
                assert _passes(c.id, c.kwargs, assistant["content"]), (p.item.id, assistant["content"])
            assert _passes("reasoning:format", {}, assistant["content"])


def test_worked_demo_example():
    demo = next(p for p in reasoning.build_problems("wordprob") if p.item.split == "train")
    text = demo.solution()
    assert text.splitlines()[0].endswith(".") and "starts with" in text.splitlines()[0]
    assert text.endswith(f"Answer: {demo.item.checks[0].kwargs['answer']}")


def test_write_demos_jsonl(tmp_path):
    out = tmp_path / "arith_demos.jsonl"
    reasoning.main(["arith", "--out", str(out)])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == sum(reasoning.COUNTS["arith"]["train"].values())
    assert set(rows[0]) == {"id", "messages"}  # the id traces a demonstration to its item
    assert reasoning.write_demos("countdown", tmp_path / "cd.jsonl", split="test") == \
        sum(reasoning.COUNTS["countdown"]["test"].values())


def test_the_mixed_suite_alternates_arith_and_countdown_and_keeps_their_splits():
    from postlab.tasks.suite import load_suite

    for split in ("train", "test"):
        mixed = load_suite("reasoning", split=split)
        parts = [load_suite(name, split=split) for name in reasoning.MIXED]
        assert sorted(it.id for it in mixed) == sorted(it.id for part in parts for it in part)
        assert [it.category for it in mixed[:6]] == ["arith", "countdown"] * 3  # the first N hold both
    demos = reasoning.worked_demos("reasoning")
    assert [d["id"] for d in demos] == [it.id for it in load_suite("reasoning", split="train")]


def test_fresh_problems_are_distinct_train_level_and_never_a_prompt_of_either_split(problems):
    for name in reasoning.SUITES:
        fresh = reasoning.fresh_problems(name, 300)
        prompts = [p.item.messages[0]["content"] for p in fresh]
        assert len(fresh) == 300 and len(set(prompts)) == 300
        assert not set(prompts) & {p.item.messages[0]["content"] for p in problems[name]}
        assert {p.item.level for p in fresh} <= set(reasoning.TRAIN_LEVELS[name])
        for p in fresh:
            for c in p.item.checks:  # each worked solution reaches the item's answer, in the documented format
                assert _passes(c.id, c.kwargs, p.solution()), (p.item.id, p.solution())
        assert [p.item.id for p in reasoning.fresh_problems(name, 300)] == [p.item.id for p in fresh]
        assert prompts != [p.item.messages[0]["content"] for p in reasoning.fresh_problems(name, 300, seed=1)]


def test_fresh_problems_keep_the_train_splits_level_shares_and_pass_on_what_a_small_level_lacks():
    fresh = reasoning.fresh_problems("countdown", 300)
    assert sorted(Counter(p.item.level for p in fresh).values()) == [100, 100, 100]
    arith = reasoning.fresh_problems("arith", 2000)  # level 1 (two one-digit operands) has ~250 prompts in all
    by_level = Counter(p.item.level for p in arith)
    assert len(arith) == 2000 and by_level[1] < 500 and by_level[2] > 500 and sum(by_level.values()) == 2000
    mixed = reasoning.fresh_demos("reasoning", 7)
    assert [d["id"].split("-")[0] for d in mixed] == ["arith", "countdown"] * 3 + ["arith"]

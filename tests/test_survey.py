"""postlab survey (issue 21 §2): similarity metrics and steerability by hand, the built-in synthetic survey, the
question and persona formats, and the command end to end on the tiny model."""

import json
import math

import numpy as np
import pytest

from postlab.errors import ConfigError, DataError
from postlab.science.survey import (js_distance, marginal, model_survey_metrics, representativeness, similarity,
                                    similarity_matrix, wasserstein_ordinal)
from postlab.science.survey_data import (GROUPS, SurveyQuestion, builtin_survey, discretised_gaussian, load_personas,
                                         load_questions)

from conftest import write_jsonl

nan = float("nan")


def test_wasserstein_and_ordinal_similarity_by_hand():
    assert wasserstein_ordinal([1, 0, 0], [0, 0, 1]) == 2  # all the mass moves two places: W1_max
    assert similarity([1, 0, 0], [0, 0, 1], ordinal=True) == 0
    # CDFs (0.5, 1) and (0, 0.5): |0.5| + |0.5| = 1, over W1_max = 2
    assert wasserstein_ordinal([0.5, 0.5, 0], [0, 0.5, 0.5]) == pytest.approx(1.0)
    assert similarity([0.5, 0.5, 0], [0, 0.5, 0.5], ordinal=True) == pytest.approx(0.5)
    assert similarity([0.2, 0.3, 0.5], [0.2, 0.3, 0.5], ordinal=True) == pytest.approx(1.0)


def test_jensen_shannon_distance_by_hand():
    assert js_distance([0.3, 0.7], [0.3, 0.7]) == pytest.approx(0.0)
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)  # base 2: disjoint supports are at distance 1
    # m = (0.75, 0.25): KL(p‖m) = log2(4/3), KL(q‖m) = ½ log2(2/3) + ½ log2(2)
    jsd = (math.log2(4 / 3) + 0.5 * math.log2(2 / 3) + 0.5) / 2
    assert js_distance([1, 0], [0.5, 0.5]) == pytest.approx(math.sqrt(jsd))  # 0.5579
    assert similarity([1, 0], [0.5, 0.5], ordinal=False) == pytest.approx(1 - math.sqrt(jsd))
    # non-ordinal options: moving mass to a far option costs the same as to a near one
    assert similarity([1, 0, 0], [0, 1, 0], False) == similarity([1, 0, 0], [0, 0, 1], False)
    assert similarity([1, 0, 0], [0, 1, 0], True) > similarity([1, 0, 0], [0, 0, 1], True)


def test_similarity_matrix_marginal_and_representativeness():
    q1 = SurveyQuestion("q1", "?", ["a", "b"], True, {"g1": [1.0, 0.0], "g2": [0.0, 1.0]})
    q2 = SurveyQuestion("q2", "?", ["a", "b"], True, {"g1": [0.5, 0.5]})
    assert marginal(q1) == [0.5, 0.5]
    S = similarity_matrix([[1.0, 0.0], [1.0, 0.0]], [q1, q2], ["g1", "g2"])
    assert S[0].tolist() == [1.0, 0.0] and S[1, 0] == 0.5 and math.isnan(S[1, 1])
    overall, by_group = representativeness(S)
    assert by_group == [0.75, 0.0] and overall == pytest.approx(0.375)  # g2 is only asked q1


def test_steerability_and_specificity_by_hand():
    groups = ["g1", "g2"]
    S = np.array([[0.5, 0.7], [0.9, nan]])  # unconditioned: R_g1 = 0.7, R_g2 = 0.7
    cross = {"g1": np.array([[0.8, 0.6], [1.0, nan]]),  # given g1's persona: R_g1 = 0.9, R_g2 = 0.6
             "g2": np.array([[0.5, 0.9], [0.7, nan]])}  # given g2's persona: R_g1 = 0.6, R_g2 = 0.9
    out = model_survey_metrics(S, np.full_like(S, 0.5), cross, groups, resamples=20, seed=0)
    assert out["representativeness"] == pytest.approx(0.7)
    assert out["minus_uniform"] == pytest.approx(0.2)
    assert out["steered"]["representativeness"] == pytest.approx(0.9)
    assert out["steered"]["representativeness_by_group"] == pytest.approx({"g1": 0.9, "g2": 0.9})
    assert out["steerability"] == pytest.approx(0.2)
    assert out["steer_specificity"] == pytest.approx(0.3)
    assert "steered" not in model_survey_metrics(S, S, None, groups, resamples=0, seed=0)


def test_builtin_survey_has_the_documented_shape_and_directions():
    questions, personas = builtin_survey()
    assert len(questions) == 20 and sum(q.ordinal for q in questions) == 14
    assert sorted({p.group for p in personas}) == sorted(GROUPS)
    for q in questions:
        assert sorted(q.human) == sorted(GROUPS)
        assert all(len(d) == len(q.options) and sum(d) == pytest.approx(1) for d in q.human.values())

    def mean_position(d):
        return sum(k * p for k, p in enumerate(d))

    sm = next(q for q in questions if q.id == "social_media")
    assert mean_position(sm.human["age 18-29"]) > mean_position(sm.human["age 65+"]) + 1.5
    d = discretised_gaussian(1.0, 3)
    assert d[0] == pytest.approx(d[2]) and d[1] > d[0]
    assert discretised_gaussian(0.0, 2) == pytest.approx([1 / (1 + math.exp(-1 / (2 * 0.81))),
                                                          1 - 1 / (1 + math.exp(-1 / (2 * 0.81)))])


def test_question_and_persona_files(tmp_path):
    qs = load_questions(write_jsonl(tmp_path / "q.jsonl", [
        {"id": "a", "question": "Q?", "options": ["x", "y"], "ordinal": True, "human": {"g": [3, 1]}},
        {"question": "R?", "options": ["x", "y", "z"], "selections": {"UK": [0.2, 0.2, 0.6]}}]))
    assert qs[0].human == {"g": [0.75, 0.25]} and qs[1].id == "1" and not qs[1].ordinal and "UK" in qs[1].human
    cases = [({"question": "Q?", "options": ["x"]}, "2 to 10"),
             ({"question": "Q?", "options": ["x", "y"], "human": {"g": [1, 2, 3]}}, r"human\['g'\]"),
             ({"question": "Q?", "options": ["x", "y"], "human": {"g": [0, 0]}}, "sum to 0"),
             ({"question": "Q?", "options": ["x", "y"], "ordinal": "yes"}, "true or false"),
             ({"options": ["x", "y"]}, "'question'")]
    for row, message in cases:
        bad = write_jsonl(tmp_path / "bad.jsonl", [{"question": "ok?", "options": ["a", "b"]}, row])
        with pytest.raises(DataError, match=message) as e:
            load_questions(bad)
        assert "bad.jsonl:2" in str(e.value)
    with pytest.raises(DataError, match="repeat"):
        load_questions(write_jsonl(tmp_path / "dup.jsonl", [{"id": "a", "question": "Q?", "options": ["x", "y"]}] * 2))
    ps = load_personas(write_jsonl(tmp_path / "p.jsonl", [{"group": "g", "text": "I am Ann."}]))
    assert ps[0].group == "g" and ps[0].text == "I am Ann."
    with pytest.raises(DataError, match="p2.jsonl:1.*'group'"):
        load_personas(write_jsonl(tmp_path / "p2.jsonl", [{"text": "I am Ann."}]))


def test_config_checks(tmp_path):
    from postlab.config import load_config
    from postlab.science.survey import SurveyConfig

    with pytest.raises(ConfigError, match="questions: file not found"):
        load_config(SurveyConfig, None, ["models=[tiny]", f"questions={tmp_path}/none.jsonl", f"out={tmp_path}/s.json"])


def test_command_on_files_side_by_side(tmp_path):
    from postlab.cli import app

    q = write_jsonl(tmp_path / "q.jsonl", [
        {"id": "a", "question": "How often do you swim?", "options": ["Never", "Sometimes", "Often"], "ordinal": True,
         "human": {"young": [0.1, 0.3, 0.6], "old": [0.6, 0.3, 0.1]}},
        {"id": "b", "question": "Tea or coffee?", "options": ["Tea", "Coffee"], "human": {"young": [0.3, 0.7],
                                                                                          "old": [0.8, 0.2]}},
        {"id": "c", "question": "Cats or dogs?", "options": ["Cats", "Dogs"]}])
    p = write_jsonl(tmp_path / "p.jsonl", [{"group": "young", "text": "I am 20."}, {"group": "old", "text": "I am 80."},
                                           {"group": "old", "text": "I am 75."}])
    out = tmp_path / "s" / "r.json"
    app(["survey", "--model", "a=tiny", "--model", "b=tiny", "--questions", str(q), "--personas", str(p),
         "--out", str(out), "bootstrap=20", "progress=false"], standalone_mode=False)
    r = json.loads(out.read_text())
    assert r["groups"] == ["old", "young"] and list(r["models"]) == ["a", "b"]
    for base in ("uniform", "marginal"):
        assert 0 <= r[base]["representativeness"] <= 1
    m = r["models"]["a"]
    for key in ("representativeness", "representativeness_ci", "minus_uniform", "steered", "steerability",
                "steer_specificity", "invalid_rate", "invalid_rate_steered"):
        assert key in m, key
    assert m["representativeness"] == r["models"]["b"]["representativeness"]  # the same model twice
    assert 0 < m["invalid_rate"] < 1
    rows = [json.loads(line) for line in (tmp_path / "s" / "r.questions.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows] == ["a", "b", "c"]
    assert sorted(rows[2]["model"]["a"]) == ["old", "unconditioned", "young"]
    assert sum(rows[0]["model"]["a"]["unconditioned"]) == pytest.approx(1, abs=1e-4)


def test_command_builtin_without_personas(tmp_path):
    from postlab.cli import app

    out = tmp_path / "r.json"
    app(["survey", "--model", "tiny", "--out", str(out), "use_personas=false", "limit=3", "orders=1", "bootstrap=0",
         "progress=false"], standalone_mode=False)
    r = json.loads(out.read_text())
    m = r["models"]["tiny"]
    assert r["n_questions"] == 3 and r["personas"] == [] and "steered" not in m and m["invalid_rate_steered"] is None
    assert m["representativeness_ci"] == [None, None]  # no bootstrap: no interval

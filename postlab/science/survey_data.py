"""Survey questions and personas: the built-in synthetic survey and the JSONL formats (docs/science.md).

Questions file (``--questions Q.jsonl``), one question per line, OpinionQA / GlobalOpinionQA style:

    {"id": "q1", "question": "How often do you ...?", "options": ["Never", "Sometimes", "Often"], "ordinal": true,
     "human": {"young": [0.1, 0.3, 0.6], "old": [0.5, 0.3, 0.2]}}

``options``: 2 to 10; ``ordinal`` (default false): the options are ordered, so distributions are compared with
the Wasserstein distance; ``human`` (optional, GlobalOpinionQA's ``selections`` is accepted too): answer
distributions (or counts) per group, each over the options, normalised on loading.

Personas file (``--personas P.jsonl``): ``{"group": "young", "text": "I am 22 years old and ..."}`` per line;
the text goes before the question (``Answer as this person would.``); ``group`` names the human distribution
it should match. Several personas may share a group (their distributions are averaged).

The built-in survey (``builtin``) is synthetic: 20 questions (14 ordinal, 6 not) and four groups (ages 18–29
and 65+, city and countryside), with one persona each. Its "human" distributions are not measurements of
people: each ordinal question gives each group a lean μ on the option scale 0..K−1 and the group's distribution
is a discretised Gaussian, p_k ∝ exp(−(k − μ)² / (2·0.9²)); each non-ordinal question gives each group weights
over the options. They give the metrics a known target, so tests and the demo run without external data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from postlab.errors import DataError
from postlab.science.options import MAX_OPTIONS


@dataclass(frozen=True)
class SurveyQuestion:
    id: str
    question: str
    options: list[str]
    ordinal: bool = False
    human: dict[str, list[float]] = field(default_factory=dict)  # group -> distribution over options


@dataclass(frozen=True)
class Persona:
    group: str
    text: str


GROUPS = ("age 18-29", "age 65+", "city", "countryside")

BUILTIN_PERSONAS = (
    Persona("age 18-29", "I am 23 years old. I finished university last year, share a flat with two friends and "
                         "spend a lot of time online."),
    Persona("age 65+", "I am 71 years old and retired. I have four grandchildren and have lived in the same house "
                       "for forty years."),
    Persona("city", "I live in the centre of a big city. I take the metro to work and love the restaurants, museums "
                    "and crowds."),
    Persona("countryside", "I live on a farm in the countryside, an hour's drive from the nearest town. I know all "
                           "my neighbours."),
)

_FREQ = ["Never", "Rarely", "Sometimes", "Often", "Every day"]
_AGREE = ["Strongly disagree", "Disagree", "Neither agree nor disagree", "Agree", "Strongly agree"]
_IMPORTANT = ["Not at all important", "Not very important", "Somewhat important", "Very important"]

# (id, question, options, lean per group in GROUPS order, on the scale 0..K-1)
_ORDINAL = (
    ("social_media", "How often do you use social media?", _FREQ, (3.8, 1.2, 3.0, 2.0)),
    ("video_games", "How often do you play video games?", _FREQ, (2.8, 0.4, 1.8, 1.2)),
    ("public_transport", "How often do you use public transport?", _FREQ, (2.8, 1.5, 3.6, 0.6)),
    ("church", "How often do you attend religious services?", _FREQ, (0.8, 2.6, 1.0, 2.2)),
    ("gardening", "How often do you work in a garden?", _FREQ, (0.8, 3.0, 0.9, 3.5)),
    ("news_paper", "How often do you read a printed newspaper?", _FREQ, (0.5, 3.2, 1.4, 2.0)),
    ("remote_work", "Working from home is better than working in an office.", _AGREE, (3.0, 1.5, 2.8, 1.8)),
    ("tradition", "It is important to keep traditions alive.", _AGREE, (2.0, 3.6, 2.2, 3.4)),
    ("cars", "Cars should be banned from city centres.", _AGREE, (2.8, 1.4, 2.9, 1.0)),
    ("neighbours", "I know most of the people who live near me.", _AGREE, (1.2, 3.2, 1.0, 3.7)),
    ("technology", "New technology makes life better.", _AGREE, (3.3, 2.0, 3.0, 2.3)),
    ("family_near", "How important is it to live near your family?", _IMPORTANT, (1.2, 2.6, 1.3, 2.3)),
    ("career", "How important is your career to you?", _IMPORTANT, (2.6, 1.0, 2.5, 1.7)),
    ("quiet", "How important is a quiet place to live?", _IMPORTANT, (1.0, 2.7, 1.1, 2.8)),
)

# (id, question, options, weights per group in GROUPS order)
_NOMINAL = (
    ("weekend", "Where would you rather spend a free weekend?", ["In a big city", "At the beach", "In the mountains",
                                                                 "At home"],
     ((5, 3, 2, 1), (1, 2, 2, 5), (3, 3, 3, 2), (1, 2, 3, 4))),
    ("news_source", "Where do you get most of your news?", ["Social media", "Television", "Newspapers", "Radio"],
     ((7, 2, 1, 1), (1, 5, 3, 2), (4, 3, 2, 1), (2, 4, 2, 3))),
    ("pet", "Which pet would you choose?", ["A dog", "A cat", "Fish", "No pet"],
     ((3, 4, 1, 3), (4, 3, 1, 2), (2, 4, 1, 4), (6, 3, 1, 1))),
    ("holiday", "How do you prefer to travel on holiday?", ["By plane", "By train", "By car"],
     ((5, 3, 2), (3, 3, 4), (4, 4, 1), (2, 1, 6))),
    ("meal", "What would you choose for dinner?", ["Pizza", "Roast meat with vegetables", "Sushi", "A salad"],
     ((5, 1, 3, 2), (1, 6, 1, 2), (3, 2, 4, 2), (2, 6, 1, 1))),
    ("music", "Which music do you listen to most?", ["Pop", "Classical", "Rock", "Folk or country"],
     ((6, 1, 2, 1), (1, 5, 2, 3), (4, 2, 3, 1), (2, 2, 2, 5))),
)

SIGMA = 0.9


def discretised_gaussian(mu: float, k: int, sigma: float = SIGMA) -> list[float]:
    """p_j ∝ exp(−(j − μ)² / (2σ²)) over j = 0..k−1."""
    w = [math.exp(-((j - mu) ** 2) / (2 * sigma ** 2)) for j in range(k)]
    z = sum(w)
    return [x / z for x in w]


def builtin_survey() -> tuple[list[SurveyQuestion], list[Persona]]:
    questions = [SurveyQuestion(qid, q, list(opts), True,
                                {g: discretised_gaussian(mu, len(opts)) for g, mu in zip(GROUPS, leans)})
                 for qid, q, opts, leans in _ORDINAL]
    questions += [SurveyQuestion(qid, q, list(opts), False,
                                 {g: [x / sum(w) for x in w] for g, w in zip(GROUPS, weights)})
                  for qid, q, opts, weights in _NOMINAL]
    return questions, list(BUILTIN_PERSONAS)


def _distribution(values: object, n: int, where: str) -> list[float]:
    if (not isinstance(values, list) or len(values) != n
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in values)):
        raise DataError(f"{where}: expected {n} non-negative numbers (one per option)")
    total = float(sum(values))
    if total <= 0:
        raise DataError(f"{where}: the numbers sum to 0")
    return [v / total for v in values]


def parse_question(row: object, where: str, index: int) -> SurveyQuestion:
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object with question and options")
    q, options = row.get("question"), row.get("options")
    if not isinstance(q, str) or not q.strip():
        raise DataError(f"{where}: 'question' must be a non-empty string")
    if (not isinstance(options, list) or not 2 <= len(options) <= MAX_OPTIONS
            or not all(isinstance(o, str) and o.strip() for o in options)):
        raise DataError(f"{where}: 'options' must be a list of 2 to {MAX_OPTIONS} non-empty strings")
    ordinal = row.get("ordinal", False)
    if not isinstance(ordinal, bool):
        raise DataError(f"{where}: 'ordinal' must be true or false")
    human = row.get("human", row.get("selections")) or {}
    if not isinstance(human, dict):
        raise DataError(f"{where}: 'human' must map each group to its answer distribution")
    dists = {str(g): _distribution(v, len(options), f"{where}: human[{g!r}]") for g, v in human.items()}
    return SurveyQuestion(str(row.get("id", index)), q, list(options), ordinal, dists)


def load_questions(path: str | Path) -> list[SurveyQuestion]:
    from postlab.data.rows import read_rows

    out = [parse_question(r.value, r.where, i) for i, r in enumerate(read_rows(path))]
    ids = [q.id for q in out]
    if len(set(ids)) != len(ids):
        raise DataError(f"{path}: question ids repeat ({', '.join(sorted({i for i in ids if ids.count(i) > 1}))})")
    return out


def load_personas(path: str | Path) -> list[Persona]:
    from postlab.data.rows import read_rows

    out = []
    for r in read_rows(path):
        row = r.value
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row["text"].strip():
            raise DataError(f"{r.where}: expected {{\"group\": ..., \"text\": ...}} with a non-empty text")
        if not isinstance(row.get("group"), str) or not row["group"].strip():
            raise DataError(f"{r.where}: 'group' must be a non-empty string (the human group it portrays)")
        out.append(Persona(row["group"], row["text"]))
    return out

"""The topic test of the answer gate (postlab/spec/topics.py): fluent words about nothing in the asked-for language
are no answer, and real answers in words of their own are.

tests/fixtures/topic_answers.jsonl holds 248 correct answers in it/pt/es/fr/de to the suites' language questions,
written by four writer agents that never saw the word lists (sets 1-4; each set was run before the lists were
widened for its misses, and set 4 after every change: 56 of 56 passed, docs/evals.md round 16)."""

import json
from pathlib import Path

import pytest

from postlab.raters.gold import GoldRater
from postlab.spec import topics
from postlab.spec.answer import non_answer
from postlab.tasks import spec_suite
from postlab.tasks.suite import make_item

FIXTURE = Path(__file__).parent / "fixtures" / "topic_answers.jsonl"
ROWS = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]


def _lang(code):
    return [("language:response_language", {"language": code})]


def test_matching_rules():
    assert topics._matches("dormitorio", "dorm") and not topics._matches("little", "lit=")
    assert topics._matches("lit", "lit=")
    # a cue with "+" needs every part: a topic is a question, not a domain
    assert [t.name for t in topics.topics_of("Wie kann ich öfter zu Hause kochen?")] == ["cooking"]
    assert topics.topics_of("Wie koche ich Spargel?") == ()
    assert topics.topics_of("Wie werde ich Mitglied in einer Wohnungsbaugenossenschaft?") == ()
    # accents and elisions folded: "l'acqua" is "acqua", "bücher" is "bucher"
    assert [t.name for t in topics.topics_of("Ich möchte mehr Bücher lesen.")] == ["reading"]


def test_words_of_the_request_do_not_count():
    request = "Che consigli mi daresti per dormire meglio?"
    assert topics.on_topic_words(request, "Vai a letto presto e spegni il telefono.", "it") == {"letto", "telefon"}
    # "dormire" is the request's own word, "notte" a word of the topic
    assert topics.on_topic_words(request, "Per dormire meglio devi dormire di notte.", "it") == {"notte"}
    assert topics.on_topic_words("Come si coltivano i pomodori?", "Al sole.", "it") is None  # no known topic


def test_one_word_of_the_topic_is_enough_only_in_a_sentence():
    request = "Warum verfärben sich die Blätter im Herbst?"
    assert not topics.off_topic(request, "Die Blätter verfärben sich, weil das Chlorophyll abgebaut wird.", "de")
    long = ("Die Blätter verfärben sich im Herbst, weil das Chlorophyll abgebaut wird, und das ist eine Frage, "
            "die viele Menschen sich stellen, wenn sie im Park spazieren gehen.")
    assert topics.off_topic(request, long, "de")  # 25 words and one thing of the topic
    assert topics.off_topic(request, "Die Blätter sind im Herbst sehr schön und bunt.", "de")


def test_lists_are_folded_and_complete():
    for t in topics.TOPICS:
        assert set(t.words) == set(topics.LANGUAGES), t.name
        for stem in [s for ws in t.words.values() for s in ws] + [p for c in t.cues for p in c.split("+")]:
            assert stem == topics._fold_word(stem), (t.name, stem)
            assert len(stem.rstrip("=")) >= 2, (t.name, stem)


def test_every_language_item_of_the_suite_has_its_topic():
    from postlab.spec.answer import _request
    missing = []
    for entry in spec_suite.build_tagged():
        specs = [(c.id, c.kwargs) for c in entry.item.checks]
        lang = next((k["language"] for cid, k in specs if cid == "language:response_language"), None)
        if lang and lang != "en" and not topics.topics_of(_request(entry.item.messages, specs)):
            missing.append(entry.item.id)
    assert missing == []


def test_real_answers_in_words_of_their_own_pass():
    assert len(ROWS) == 248 and {r["set"] for r in ROWS} == {1, 2, 3, 4}
    gold, failed = GoldRater(), []
    for r in ROWS:
        item = make_item("t", [{"role": "user", "content": r["request"]}], "language", "test", _lang(r["language"]))
        result = gold.grade(item, r["response"])
        if not result.all_passed:
            failed.append((r["response"], result.non_answer))
    assert failed == []


# Answers of SmolLM2 policies that every blind reader of the gold audit failed and the language check passed
# before the topic test (rounds 1-15, docs/evals.md).
BABBLE = [
    ("Qual è il modo migliore per leggere più libri?", "it",
     "Il modo migliore per leggere più libri. Questo è una storia completa che rimane la storia completa."),
    ("What are some easy ways to drink more water during the day? Answer in Italian, please.", "it",
     "Ecco il mio amore è la vita, ma non ha vede la vita per l'amore."),
    ("Che consigli mi daresti per imparare una nuova lingua?", "it",
     "Il soggetto è un lavoro che si possa avere una loro amore. Questi lavori sia l'ora che l'anno."),
    ("Que conselhos você me daria para começar a correr?", "pt",
     'Para começar a correr, você precisa ter este tipo de comando:\n\n"python -m correr"'),
    ("English only, please! How can I prepare for a long flight?", "de",
     "Das ist ein kleines Buch, ein kleines Buch und ein kleines Buch. Er kann lernen und kaufen."),
    ("Quelles erreurs faut-il éviter quand on veut réduire mon stress au travail ?", "fr",
     "Il faut réduire. Il faut ne pas d'avoir le sentiment avec chère facteurs. Il faut ceux-t-ait point et le "
     "bout de la plan."),
    ("¿Qué errores debería evitar si quiero leer más libros?", "es",
     "No, no hay que leer más libros. El lenguaje es más límite, y no puedes ser más límite en la comunidad."),
    ("Qual è il modo migliore per organizzare un viaggio economico?", "it",
     "Il modo migliore per organizzare un viaggio economico è uno dei modi migliano, che è una storia di "
     "economia economica."),
]


@pytest.mark.parametrize("request_,lang,response", BABBLE, ids=[f"babble{i}" for i in range(len(BABBLE))])
def test_fluent_babble_is_off_the_topic(request_, lang, response):
    assert non_answer([{"role": "user", "content": request_}], _lang(lang), response) == "off_topic"

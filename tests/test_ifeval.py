"""IFEval's verifiable instructions: hand-written responses that follow or break each one."""

import pytest

from postlab.spec.ifeval import INSTRUCTION_IDS, check_loose, check_strict, describe, validate_kwargs

HAIKU = "Write a haiku about rain."
FR = "Je voudrais réserver une table pour deux personnes ce soir, s'il vous plaît. Merci beaucoup pour votre aide."
ES = "El clima de hoy es muy agradable y vamos a caminar por el parque con nuestros amigos."
DE = "Ich habe gestern ein sehr interessantes Buch über die Geschichte der Stadt gelesen."
EN = "I would like to book a table for two people tonight, please. Thank you very much."

# id -> (kwargs, responses that follow it, responses that break it); rows may override kwargs with
# a (kwargs, response) pair.
CASES = {
    "keywords:existence": ({"keywords": ["budget", "deadline"]}, [
        "We must agree on the budget before the deadline.",
        "DEADLINE: Friday. Budget: $5,000.",
        "The budgeting meeting moved and the deadlines slipped.",  # substrings count, as in IFEval
    ], [
        "We must agree on the budget soon.",
        "The deadline is Friday.",
        "The cost plan is due on Friday.",
    ]),
    "keywords:frequency": ({"keyword": "river", "frequency": 3, "relation": "at least"}, [
        "The river bends. The river floods. The river sleeps.",
        "River, river, RIVER!",
        "Rivers and riverbanks line the river valley.",
        ({"keyword": "very", "frequency": 2, "relation": "less than"}, "This is very good."),
    ], [
        "The river bends and the river floods.",
        "A stream, a creek, a brook.",
        ({"keyword": "very", "frequency": 2, "relation": "less than"}, "Very, very good."),
    ]),
    "keywords:forbidden_words": ({"forbidden_words": ["guarantee", "cheap"]}, [
        "Our product is affordable and reliable.",
        "We offer guaranteed delivery.",  # whole words only
        "Cheaper options exist.",
    ], [
        "We guarantee satisfaction.",
        "It is CHEAP.",
        "No cheap tricks and no guarantee.",
    ]),
    "keywords:letter_frequency": ({"letter": "z", "let_frequency": 2, "let_relation": "at least"}, [
        "Pizza is great.",
        "Zebras zoom.",
        "The jazz quiz.",
        ({"letter": "E", "let_frequency": 3, "let_relation": "less than"}, "The cat sat."),
    ], [
        "A lazy afternoon.",
        "Nothing here.",
        ({"letter": "e", "let_frequency": 3, "let_relation": "less than"}, "Everyone here."),
    ]),
    "language:response_language": ({"language": "fr"}, [
        FR,
        ({"language": "es"}, ES),
        ({"language": "de"}, DE),
        ({"language": "ja"}, "12345 !!!"),  # nothing to detect: IFEval counts it as followed
    ], [
        EN,
        ({"language": "en"}, ES),
        ({"language": "ru"}, DE),
    ]),
    "length_constraints:number_sentences": ({"num_sentences": 3, "relation": "less than"}, [
        "It rained. We stayed in.",
        "Dr. Smith arrived at 5 p.m. and left early.",  # abbreviations do not end sentences
        "One sentence only",
        ({"num_sentences": 4, "relation": "less than"}, "1. Mix flour.\n2. Add eggs.\n3. Bake."),  # list markers
        ({"num_sentences": 2, "relation": "at least"}, "Is it done? Yes!"),
    ], [
        "It rained. We stayed in. We read books.",
        "Wow! Really? Yes. Okay.",
        ({"num_sentences": 2, "relation": "at least"}, "Only one sentence here, e.g. this one."),
    ]),
    "length_constraints:number_paragraphs": ({"num_paragraphs": 3}, [
        "First.\n***\nSecond.\n***\nThird.",
        "A *** B *** C",
        "***\nIntro\n***\nBody\n***\nEnd\n***",  # dividers at either end are ignored
    ], [
        "First.\n***\nSecond.",
        "A\n***\n***\nB\n***\nC",  # an empty paragraph in the middle
        "First.\n\nSecond.\n\nThird.",
    ]),
    "length_constraints:number_words": ({"num_words": 5, "relation": "at least"}, [
        "one two three four five",
        "It's a well-known fact.",  # It, s, a, well, known, fact
        "Call 555-0100 now, please!",
    ], [
        "Too short here.",
        "Hi!",
        ({"num_words": 4, "relation": "less than"}, "Four words right here"),
    ]),
    "length_constraints:nth_paragraph_first_word": (
        {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "however"}, [
            "Intro text.\n\nHowever, things changed.\n\nThe end.",
            'A.\n\n"However," she said.\n\nC.',
            ({"num_paragraphs": 3, "nth_paragraph": 1, "first_word": "Summer"},
             "Summer is here.\n\nIt is hot.\n\nWe swim."),
            "A.\n\n\n\nHowever, yes.\n\nC.",  # extra blank lines do not shift the count
        ], [
            "A.\n\nHowever, b.",
            "A.\n\nBut things changed.\n\nC.",
            "A.\n\nHoweverish nonsense.\n\nC.",
            "A.\nHowever, b.\nC.",
        ]),
    "detectable_content:number_placeholders": ({"num_placeholders": 2}, [
        "Dear [name], your order [order_id] has shipped.",
        "[a] [b] [c]",
        "Meet me at [time] in [place].",
    ], [
        "Dear [name], thanks.",
        "Dear name, thanks.",
        "Use {name} and <date>.",
    ]),
    "detectable_content:postscript": ({"postscript_marker": "P.S."}, [
        "Thanks for reading.\n\nP.S. Bring snacks.",
        "See you.\np.s. don't be late",
        "Bye!\nP. S. Call me.",
        ({"postscript_marker": "P.P.S"}, "Hi.\nP.S. one\nP.P.S two"),
    ], [
        "Thanks for reading. Bring snacks.",
        "PS: bring snacks",
        ({"postscript_marker": "P.P.S"}, "Hi.\nP.S. only one"),
    ]),
    "detectable_format:number_bullet_lists": ({"num_bullets": 3}, [
        "* apples\n* pears\n* plums",
        "- red\n- green\n- blue",
        "Fruits:\n* apple\n  - nested item\n* pear",
    ], [
        "* a\n* b",
        "* a\n* b\n* c\n* d",
        "**Bold** heading\n**Another**\n**Third**",
        "1. a\n2. b\n3. c",
    ]),
    "detectable_format:constrained_response": ({}, [
        "My answer is yes.",
        "After thinking it over: My answer is maybe.",
        "  My answer is no.  ",
    ], [
        "Yes.",
        "My answer is yes",
        "my answer is no.",
    ]),
    "detectable_format:number_highlighted_sections": ({"num_highlights": 2}, [
        "*Step one* then *step two*",
        "**Important** and **urgent**",
        "*a*\n*b*\n*c*",
    ], [
        "*only one* here",
        "no highlights",
        "** ** and * * and *\nbroken*",
    ]),
    "detectable_format:multiple_sections": ({"section_spliter": "Section", "num_sections": 2}, [
        "Section 1\nIntro.\nSection 2\nDetails.",
        "Section 1: Setup\nSection 2: Run\nSection 3: Clean",
        ({"section_spliter": "SECTION", "num_sections": 3}, "SECTION 1 a SECTION 2 b SECTION 3 c"),
    ], [
        "Section one\nSection two",
        "section 1 a section 2 b",
        "Section 1 only",
        "SECTION 1 a SECTION 2 b",
    ]),
    "detectable_format:json_format": ({}, [
        '{"a": 1}',
        '```json\n{"name": "Ann", "age": 30}\n```',
        "[1, 2, 3]",
    ], [
        'Here is the JSON: {"a": 1}',
        "{'a': 1}",
        '```json\n{"a": 1,}\n```',
    ]),
    "detectable_format:title": ({}, [
        "<<Ode to Autumn>>\nLeaves fall.",
        "Poem: <<joy>>",
        "<< A Title >>",
    ], [
        "<<>>",
        "<Title>",
        "<<Broken\ntitle>>",
        "<<   >>",
    ]),
    "combination:two_responses": ({}, [
        "Answer A.\n******\nAnswer B.",
        "******\nFirst\n******\nSecond\n******",
        "Yes******No",
    ], [
        "Same\n******\nSame",
        "A\n******\nB\n******\nC",
        "Just one answer.",
        "A\n******\n\n******\nB",
    ]),
    "combination:repeat_prompt": ({"prompt_to_repeat": HAIKU}, [
        HAIKU + "\nSoft drops on the roof",
        "write a haiku about rain. Rain taps the glass",
        "  " + HAIKU + " Here it is.",
    ], [
        "Sure! " + HAIKU,
        "Write a haiku about snow. Snow falls.",
        "Rain taps the window.",
    ]),
    "startend:end_checker": ({"end_phrase": "Any other questions?"}, [
        "That covers it. Any other questions?",
        "That covers it. any other questions?  \n",
        '"Done. Any other questions?"',
    ], [
        "Any other questions? Let me know.",
        "That covers it. Any other questions",
        "That covers it. Any other questions?!",
    ]),
    "change_case:capital_word_frequency": ({"capital_frequency": 3, "capital_relation": "at least"}, [
        "This is VERY, VERY IMPORTANT.",
        "NASA and the ESA use GPS.",
        "DON'T STOP NOW",
        ({"capital_frequency": 3, "capital_relation": "less than"}, "A WELL-KNOWN fact."),  # 2 words
    ], [
        "Only ONE capital word.",
        "Nothing here.",
        ({"capital_frequency": 2, "capital_relation": "less than"}, "I AM HERE"),
    ]),
    "change_case:english_capital": ({}, [
        "THIS IS A SIMPLE SENTENCE WRITTEN IN ENGLISH FOR THE TEST.",
        "HELLO, HOW ARE YOU DOING TODAY? I HOPE EVERYTHING IS WELL.",
        "WE WENT TO THE MARKET AND BOUGHT 3 APPLES.",
    ], [
        "This is not all caps.",
        "ЭТО ПРЕДЛОЖЕНИЕ НАПИСАНО НА РУССКОМ ЯЗЫКЕ ДЛЯ ПРОВЕРКИ.",
        "ALMOST ALL CAPs",
    ]),
    "change_case:english_lowercase": ({}, [
        "this is a simple sentence written in english for the test.",
        "hello, how are you doing today?",
        "we bought 3 apples.",
    ], [
        "This starts with a capital.",
        "das ist ein satz, der komplett auf deutsch geschrieben wurde.",
        "all lowercase except NASA",
    ]),
    "punctuation:no_comma": ({}, [
        "No commas here.",
        "Lists work too: a; b; c.",
        "Line one\nLine two",
    ], [
        "Yes, indeed.",
        "1,000 people came.",
        "a, b",
    ]),
    "startend:quotation": ({}, [
        '"Hello there."',
        '  "Padded."  \n',
        '"Two\nlines"',
    ], [
        "Hello",
        '"Unclosed',
        "“Curly quotes”",
        '"',
    ]),
}


def _rows(expected: bool) -> list:
    rows = []
    for instruction_id, (kwargs, follows, breaks) in CASES.items():
        for row in follows if expected else breaks:
            row_kwargs, response = row if isinstance(row, tuple) else (kwargs, row)
            rows.append(pytest.param(instruction_id, row_kwargs, response, id=f"{instruction_id}-{response[:24]!r}"))
    return rows


def test_ids_are_ifevals_25():
    assert len(INSTRUCTION_IDS) == len(set(INSTRUCTION_IDS)) == 25
    assert set(INSTRUCTION_IDS) == set(CASES)


@pytest.mark.parametrize("instruction_id", sorted(CASES))
def test_every_id_has_three_cases_each_way(instruction_id):
    _, follows, breaks = CASES[instruction_id]
    assert len(follows) >= 3 and len(breaks) >= 3


@pytest.mark.parametrize("instruction_id,kwargs,response", _rows(True))
def test_follows(instruction_id, kwargs, response):
    assert check_strict(instruction_id, kwargs, response)
    assert check_loose(instruction_id, kwargs, response)  # loose only ever adds passes


@pytest.mark.parametrize("instruction_id,kwargs,response", _rows(False))
def test_breaks(instruction_id, kwargs, response):
    assert not check_strict(instruction_id, kwargs, response)


@pytest.mark.parametrize("instruction_id,kwargs,response", [
    ("detectable_format:json_format", {}, 'Sure, here you go:\n{"a": 1}'),
    ("combination:repeat_prompt", {"prompt_to_repeat": HAIKU}, "Sure, here you go:\n" + HAIKU + " Rain."),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, "Done. Any other questions?\nHope this helps!"),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "however"},
     "Intro.\n\n**However**, it changed."),
    ("startend:quotation", {}, '**"Hello there."**'),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "Sure, here you go:\n* one\n* two\n- Hope it helps!"),
])
def test_loose_forgives_preamble_closing_line_and_markdown(instruction_id, kwargs, response):
    assert not check_strict(instruction_id, kwargs, response)
    assert check_loose(instruction_id, kwargs, response)


@pytest.mark.parametrize("instruction_id,kwargs,response", [
    ("punctuation:no_comma", {}, "Sure, here you go:\nYes, indeed.\nBye, then."),
    ("detectable_format:constrained_response", {}, "Sure.\nI think so.\nBye."),
    ("detectable_format:title", {}, "   \n\n"),  # blank responses fail, whatever the instruction
])
def test_loose_still_fails(instruction_id, kwargs, response):
    assert not check_loose(instruction_id, kwargs, response)


def test_blank_response_fails_strict_even_when_vacuously_true():
    assert not check_strict("punctuation:no_comma", {}, "  \n ")
    assert not check_strict("keywords:forbidden_words", {"forbidden_words": ["cheap"]}, "")


def test_ifeval_record_with_none_and_extra_kwargs_evaluates_as_is():
    # The Hugging Face copy of IFEval gives every instruction every kwarg key, mostly None.
    record = {
        "key": 1000,
        "prompt": "Write a 300+ word summary of the wikipedia page ...",
        "instruction_id_list": ["punctuation:no_comma", "detectable_format:number_highlighted_sections",
                                "length_constraints:number_words"],
        "kwargs": [
            {"num_highlights": None, "relation": None, "num_words": None},
            {"num_highlights": 2, "relation": None, "num_words": None, "language": None},
            {"num_highlights": None, "relation": "at least", "num_words": 6, "prompt_to_repeat": None},
        ],
    }
    response = "*Raymond III* was Count of Tripoli and *a regent* of Jerusalem"
    assert [check_strict(i, k, response) for i, k in zip(record["instruction_id_list"], record["kwargs"])] == [
        True, True, True]


def test_integral_floats_from_pandas_are_accepted():
    assert check_strict("length_constraints:number_words", {"num_words": 3.0, "relation": "at least"}, "one two three")


@pytest.mark.parametrize("instruction_id,kwargs,named", [
    ("length_constraints:number_words", {"num_words": 300}, "relation"),
    ("length_constraints:number_words", {"num_words": 300, "relation": "at most"}, "relation"),
    ("length_constraints:number_words", {"num_words": "300", "relation": "at least"}, "num_words"),
    ("length_constraints:number_words", {"num_words": 300.5, "relation": "at least"}, "num_words"),
    ("detectable_format:number_bullet_lists", {"num_bullets": True}, "num_bullets"),
    ("detectable_format:number_bullet_lists", {"num_bullets": -1}, "num_bullets"),
    ("language:response_language", {"language": "english"}, "language"),
    ("keywords:letter_frequency", {"letter": "ab", "let_frequency": 3, "let_relation": "at least"}, "letter"),
    ("keywords:existence", {"keywords": "budget"}, "keywords"),
    ("keywords:forbidden_words", {"forbidden_words": []}, "forbidden_words"),
    ("keywords:frequency", {"keywords": ["river"], "frequency": 3, "relation": "at least"}, "keyword"),
    ("combination:repeat_prompt", {"prompt_to_repeat": "  "}, "prompt_to_repeat"),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 3, "nth_paragraph": 0, "first_word": "a"},
     "nth_paragraph"),
])
def test_validate_kwargs_names_the_id_and_kwarg(instruction_id, kwargs, named):
    with pytest.raises(ValueError, match=f"{instruction_id}.*'{named}'"):
        validate_kwargs(instruction_id, kwargs)
    with pytest.raises(ValueError, match=f"'{named}'"):
        check_strict(instruction_id, kwargs, "some response")


def test_unknown_id_lists_close_matches():
    with pytest.raises(ValueError, match="length_constraints:number_words"):
        validate_kwargs("length_constraints:num_words", {})
    with pytest.raises(ValueError, match="startend:quotation"):
        check_loose("startend:quotations", {}, '"hi"')


DESCRIBE_KWARGS = {instruction_id: kwargs for instruction_id, (kwargs, _, _) in CASES.items()}


def test_describe_examples():
    assert describe("length_constraints:number_words", {"num_words": 300, "relation": "at least"}) == (
        "Answer with at least 300 words.")
    assert describe("language:response_language", {"language": "fr"}) == (
        "Your ENTIRE response should be in French language, no other language is allowed.")
    assert '"budget", "deadline"' in describe("keywords:existence", DESCRIBE_KWARGS["keywords:existence"])
    assert "SECTION 1" in describe("detectable_format:multiple_sections", {"section_spliter": "SECTION",
                                                                          "num_sections": 4})


@pytest.mark.parametrize("instruction_id", INSTRUCTION_IDS)
def test_describe_is_one_line_for_every_id(instruction_id):
    text = describe(instruction_id, DESCRIBE_KWARGS[instruction_id])
    assert text and "\n" not in text

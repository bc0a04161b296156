"""IFEval's 25 verifiable instructions: checkers, kwargs validation and one-line descriptions.

Zhou et al. 2023, "Instruction-Following Evaluation for Large Language Models" (arXiv:2311.07911).
Ids and kwargs names are IFEval's own, so its input records (`{"key", "prompt",
"instruction_id_list", "kwargs"}`) evaluate as-is; kwargs set to None (the Hugging Face copy of
the data fills every key with None) and keys an instruction does not use are ignored.

Each checker follows the reference implementation's definition, with these deliberate differences:

- Sentences are counted by a regex splitter (`_count_sentences`) instead of nltk's punkt model,
  whose data needs a download; words are `\\w+` runs, exactly as IFEval counts them.
- Capital words are counted over regex word tokens rather than nltk's Treebank tokens; a
  contraction such as DON'T counts as one capital word (Treebank splits it in two).
- Keywords, forbidden words and section splitters are matched literally (IFEval passes them to
  `re` unescaped, so a keyword like "C++" would be a broken pattern).
- `nth_paragraph_first_word` indexes the non-empty paragraphs (IFEval indexes the raw split, so
  four newlines in a row make the paragraph after them unreachable).
- A postscript marker with periods accepts one optional space after each period for any marker
  (IFEval does this for "P.S." and "P.P.S" only).
- `language` also accepts "zh" and matches it against langdetect's "zh-cn" / "zh-tw".
"""

from __future__ import annotations

import difflib
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langdetect import DetectorFactory, detect
from langdetect.lang_detect_exception import LangDetectException

# langdetect samples features at random; a fixed seed makes the same text always give the same
# language.
DetectorFactory.seed = 0

RELATIONS = ("less than", "at least")
CONSTRAINED_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")

# ISO 639-1 codes that langdetect can recognise (IFEval's 30 languages are all among them).
LANGUAGES = {
    "af": "Afrikaans", "ar": "Arabic", "bg": "Bulgarian", "bn": "Bengali", "ca": "Catalan",
    "cs": "Czech", "cy": "Welsh", "da": "Danish", "de": "German", "el": "Greek", "en": "English",
    "es": "Spanish", "et": "Estonian", "fa": "Persian", "fi": "Finnish", "fr": "French",
    "gu": "Gujarati", "he": "Hebrew", "hi": "Hindi", "hr": "Croatian", "hu": "Hungarian",
    "id": "Indonesian", "it": "Italian", "ja": "Japanese", "kn": "Kannada", "ko": "Korean",
    "lt": "Lithuanian", "lv": "Latvian", "mk": "Macedonian", "ml": "Malayalam", "mr": "Marathi",
    "ne": "Nepali", "nl": "Dutch", "no": "Norwegian", "pa": "Punjabi", "pl": "Polish",
    "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sk": "Slovak", "sl": "Slovenian",
    "so": "Somali", "sq": "Albanian", "sv": "Swedish", "sw": "Swahili", "ta": "Tamil",
    "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "uk": "Ukrainian",
    "ur": "Urdu", "vi": "Vietnamese", "zh": "Chinese",
}


# --- kwarg kinds: each converts a raw value or raises ValueError saying what was expected ---

def _int_at_least(low: int) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        # Integral floats appear when IFEval's data passes through pandas (None forces float64).
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"must be an integer >= {low}, got {value!r}")
        return value
    return convert


_count = _int_at_least(0)
_position = _int_at_least(1)


def _relation(value: Any) -> str:
    if value not in RELATIONS:
        raise ValueError(f"must be one of {RELATIONS}, got {value!r}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty string, got {value!r}")
    return value.strip()


def _words(value: Any) -> list[str]:
    if (not isinstance(value, (list, tuple)) or not value
            or not all(isinstance(w, str) and w.strip() for w in value)):
        raise ValueError(f"must be a non-empty list of non-empty strings, got {value!r}")
    return list(value)


def _letter(value: Any) -> str:
    if not isinstance(value, str) or len(value.strip()) != 1 or not value.strip().isalpha():
        raise ValueError(f"must be a single letter, got {value!r}")
    return value.strip().lower()


def _language(value: Any) -> str:
    if value not in LANGUAGES:
        raise ValueError(f"must be an ISO 639-1 code langdetect knows ({', '.join(LANGUAGES)}), got {value!r}")
    return value


# --- shared text measures ---

def _compare(actual: int, relation: str, threshold: int) -> bool:
    return actual < threshold if relation == "less than" else actual >= threshold


def _count_words(text: str) -> int:
    return len(re.findall(r"\w+", text))


# Titles after which a period never ends a sentence ("Dr. Smith"); single letters (initials) too.
_TITLES = frozenset({"mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "capt", "lt", "gen", "rev"})
# Abbreviations that end a sentence only when a capitalised word follows ("etc. The", not
# "e.g. the"); tokens with an inner period ("e.g.", "U.S.", "a.m.") are treated the same.
_ABBREVIATIONS = frozenset({"etc", "vs", "cf", "approx", "fig", "inc", "ltd", "co", "corp", "dept"})
_CLOSERS = "\"')]}”’*"
_OPENERS = "\"'([{“‘*"


def _ends_sentence(token: str, next_token: str | None, at_line_start: bool) -> bool:
    """Whether a whitespace-delimited token closes a sentence (punkt's main rules, as regexes)."""
    body = token.rstrip(_CLOSERS)
    end = re.search(r"[.!?]+$", body)
    if not end:
        return False
    if "!" in end.group() or "?" in end.group():
        return True
    next_capital = next_token is not None and next_token.lstrip(_OPENERS)[:1].isupper()
    core = body[: end.start()].lstrip(_OPENERS).lower()
    if len(end.group()) > 1:  # an ellipsis ends a sentence only before a capital
        return next_capital
    if core in _TITLES or (len(core) == 1 and core.isalpha()):
        return False
    if core in _ABBREVIATIONS or "." in core:
        return next_capital
    if core.isdigit() and at_line_start:  # "1." opening a numbered-list line
        return False
    return True


def _count_sentences(text: str) -> int:
    """Sentences end at . ! ? followed by whitespace; trailing text without one is a sentence too."""
    tokens = list(re.finditer(r"\S+", text))
    count, open_sentence = 0, False
    for i, match in enumerate(tokens):
        open_sentence = True
        line_start = text.rfind("\n", 0, match.start()) + 1
        at_line_start = not text[line_start: match.start()].strip()
        next_token = tokens[i + 1].group() if i + 1 < len(tokens) else None
        if _ends_sentence(match.group(), next_token, at_line_start):
            count, open_sentence = count + 1, False
    return count + open_sentence


def _detect_language(text: str) -> str | None:
    """langdetect's code ("zh-cn" -> "zh"), or None when the text has no detectable features."""
    try:
        return detect(text).split("-")[0]
    except LangDetectException:
        return None


def _split_nonempty(text: str, separator: str) -> list[str] | None:
    """Parts between separators; empty parts are allowed only at either end (else None)."""
    parts = re.split(separator, text)
    if any(not p.strip() for p in parts[1:-1]):
        return None
    return [p for p in parts if p.strip()]


# --- checkers: (response, **kwargs) -> followed? ---

def _keywords_existence(response: str, keywords: list[str]) -> bool:
    return all(re.search(re.escape(k), response, flags=re.IGNORECASE) for k in keywords)


def _keywords_frequency(response: str, keyword: str, frequency: int, relation: str) -> bool:
    # Substring occurrences, as IFEval counts them ("cats" counts for "cat").
    return _compare(len(re.findall(re.escape(keyword), response, flags=re.IGNORECASE)), relation, frequency)


def _forbidden_words(response: str, forbidden_words: list[str]) -> bool:
    return not any(re.search(rf"\b{re.escape(w)}\b", response, flags=re.IGNORECASE) for w in forbidden_words)


def _letter_frequency(response: str, letter: str, let_frequency: int, let_relation: str) -> bool:
    return _compare(Counter(response.lower())[letter], let_relation, let_frequency)


def _response_language(response: str, language: str) -> bool:
    detected = _detect_language(response)
    return detected is None or detected == language  # IFEval counts undetectable text as followed


def _number_sentences(response: str, num_sentences: int, relation: str) -> bool:
    return _compare(_count_sentences(response), relation, num_sentences)


def _number_paragraphs(response: str, num_paragraphs: int) -> bool:
    paragraphs = _split_nonempty(response, r"\s?\*\*\*\s?")
    return paragraphs is not None and len(paragraphs) == num_paragraphs


def _number_words(response: str, num_words: int, relation: str) -> bool:
    return _compare(_count_words(response), relation, num_words)


def _nth_paragraph_first_word(response: str, num_paragraphs: int, nth_paragraph: int, first_word: str) -> bool:
    paragraphs = [p.strip() for p in response.split("\n\n") if p.strip()]
    if len(paragraphs) != num_paragraphs or nth_paragraph > len(paragraphs):
        return False
    # The first word loses leading quotes and is cut at the first punctuation mark ("Well," -> "well").
    word = paragraphs[nth_paragraph - 1].split()[0].lstrip("'\"")
    return re.split(r"[.,?!'\"]", word)[0].lower() == first_word.lower()


def _number_placeholders(response: str, num_placeholders: int) -> bool:
    return len(re.findall(r"\[.*?\]", response)) >= num_placeholders


def _postscript(response: str, postscript_marker: str) -> bool:
    # Like IFEval the marker may sit anywhere, case-insensitively; "P. S." counts as "P.S.".
    pattern = re.escape(postscript_marker.lower()).replace(r"\.", r"\.\s?")
    return re.search(pattern, response.lower()) is not None


def _number_bullet_lists(response: str, num_bullets: int) -> bool:
    # Markdown bullets: lines starting with "* " (not "**") or "-"; exactly the number asked for.
    stars = re.findall(r"^\s*\*[^*].*$", response, flags=re.MULTILINE)
    dashes = re.findall(r"^\s*-.*$", response, flags=re.MULTILINE)
    return len(stars) + len(dashes) == num_bullets


def _constrained_response(response: str) -> bool:
    return any(option in response for option in CONSTRAINED_OPTIONS)


def _number_highlighted_sections(response: str, num_highlights: int) -> bool:
    # *x* and **x** on one line, non-blank inside; "**x**" also yields two empty "**" single matches.
    single = [h for h in re.findall(r"\*[^\n*]*\*", response) if h.strip("*").strip()]
    double = [h for h in re.findall(r"\*\*[^\n*]*\*\*", response) if h[2:-2].strip()]
    return len(single) + len(double) >= num_highlights


def _multiple_sections(response: str, section_spliter: str, num_sections: int) -> bool:
    sections = re.split(rf"\s?{re.escape(section_spliter)}\s?\d+\s?", response)
    return len(sections) - 1 >= num_sections


def _json_format(response: str) -> bool:
    body = response.strip()
    for fence in ("```json", "```Json", "```JSON", "```"):
        body = body.removeprefix(fence)
    try:
        json.loads(body.removesuffix("```").strip())
    except ValueError:
        return False
    return True


def _title(response: str) -> bool:
    return any(t.strip("<>").strip() for t in re.findall(r"<<[^\n]+>>", response))


def _two_responses(response: str) -> bool:
    parts = _split_nonempty(response, re.escape("******"))
    return parts is not None and len(parts) == 2 and parts[0].strip() != parts[1].strip()


def _repeat_prompt(response: str, prompt_to_repeat: str) -> bool:
    return response.strip().lower().startswith(prompt_to_repeat.strip().lower())


def _end_checker(response: str, end_phrase: str) -> bool:
    return response.strip().strip('"').lower().endswith(end_phrase.lower())


def _capital_word_frequency(response: str, capital_frequency: int, capital_relation: str) -> bool:
    # Hyphenated words and contractions are one word ("WELL-KNOWN", "DON'T").
    words = re.findall(r"\w+(?:[-'’]\w+)*", response)
    return _compare(sum(w.isupper() for w in words), capital_relation, capital_frequency)


def _english_capital(response: str) -> bool:
    return response.isupper() and _detect_language(response) in ("en", None)


def _english_lowercase(response: str) -> bool:
    return response.islower() and _detect_language(response) in ("en", None)


def _no_comma(response: str) -> bool:
    return "," not in response


def _quotation(response: str) -> bool:
    body = response.strip()
    return len(body) > 1 and body[0] == body[-1] == '"'


# --- registry ---

@dataclass(frozen=True)
class _Instruction:
    check: Callable[..., bool]  # (response, **kwargs)
    kwargs: dict[str, Callable[[Any], Any]]  # required kwarg -> converter that validates it
    describe: Callable[..., str]  # (**kwargs) -> one line


def _quoted(words: list[str]) -> str:
    return ", ".join(f'"{w}"' for w in words)


_REGISTRY: dict[str, _Instruction] = {
    "keywords:existence": _Instruction(
        _keywords_existence, {"keywords": _words},
        lambda keywords: f"Include the keywords {_quoted(keywords)} in the response."),
    "keywords:frequency": _Instruction(
        _keywords_frequency, {"keyword": _text, "frequency": _count, "relation": _relation},
        lambda keyword, frequency, relation:
            f'In your response, the word "{keyword}" should appear {relation} {frequency} times.'),
    "keywords:forbidden_words": _Instruction(
        _forbidden_words, {"forbidden_words": _words},
        lambda forbidden_words: f"Do not include the words {_quoted(forbidden_words)} in the response."),
    "keywords:letter_frequency": _Instruction(
        _letter_frequency, {"letter": _letter, "let_frequency": _count, "let_relation": _relation},
        lambda letter, let_frequency, let_relation:
            f'In your response, the letter "{letter}" should appear {let_relation} {let_frequency} times.'),
    "language:response_language": _Instruction(
        _response_language, {"language": _language},
        lambda language:
            f"Your ENTIRE response should be in {LANGUAGES[language]} language, no other language is allowed."),
    "length_constraints:number_sentences": _Instruction(
        _number_sentences, {"num_sentences": _count, "relation": _relation},
        lambda num_sentences, relation: f"Your response should contain {relation} {num_sentences} sentences."),
    "length_constraints:number_paragraphs": _Instruction(
        _number_paragraphs, {"num_paragraphs": _position},
        lambda num_paragraphs:
            f"There should be {num_paragraphs} paragraphs, separated from each other by the markdown divider ***."),
    "length_constraints:number_words": _Instruction(
        _number_words, {"num_words": _count, "relation": _relation},
        lambda num_words, relation: f"Answer with {relation} {num_words} words."),
    "length_constraints:nth_paragraph_first_word": _Instruction(
        _nth_paragraph_first_word,
        {"num_paragraphs": _position, "nth_paragraph": _position, "first_word": _text},
        lambda num_paragraphs, nth_paragraph, first_word:
            f"There should be {num_paragraphs} paragraphs, separated from each other by two new lines; "
            f'paragraph {nth_paragraph} must start with the word "{first_word}".'),
    "detectable_content:number_placeholders": _Instruction(
        _number_placeholders, {"num_placeholders": _count},
        lambda num_placeholders: f"The response must contain at least {num_placeholders} placeholders "
                                 "in square brackets, such as [address]."),
    "detectable_content:postscript": _Instruction(
        _postscript, {"postscript_marker": _text},
        lambda postscript_marker:
            f"At the end of your response, please explicitly add a postscript starting with {postscript_marker}"),
    "detectable_format:number_bullet_lists": _Instruction(
        _number_bullet_lists, {"num_bullets": _count},
        lambda num_bullets: f"Your answer must contain exactly {num_bullets} bullet points, "
                            "using markdown bullets such as: * This is a point."),
    "detectable_format:constrained_response": _Instruction(
        _constrained_response, {},
        lambda: f"Answer with one of the following options: {_quoted(list(CONSTRAINED_OPTIONS))}."),
    "detectable_format:number_highlighted_sections": _Instruction(
        _number_highlighted_sections, {"num_highlights": _count},
        lambda num_highlights: f"Highlight at least {num_highlights} sections in your answer with markdown, "
                               "i.e. *highlighted section*."),
    "detectable_format:multiple_sections": _Instruction(
        _multiple_sections, {"section_spliter": _text, "num_sections": _position},
        lambda section_spliter, num_sections:
            f"Your response must have {num_sections} sections. Mark the beginning of each section with "
            f"{section_spliter} X, such as {section_spliter} 1, {section_spliter} 2."),
    "detectable_format:json_format": _Instruction(
        _json_format, {},
        lambda: "Entire output should be wrapped in JSON format. You can use markdown ticks such as ```."),
    "detectable_format:title": _Instruction(
        _title, {},
        lambda: "Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>."),
    "combination:two_responses": _Instruction(
        _two_responses, {},
        lambda: "Give two different responses. Responses and only responses should be separated by "
                "6 asterisk symbols: ******."),
    "combination:repeat_prompt": _Instruction(
        _repeat_prompt, {"prompt_to_repeat": _text},
        # The request itself is the prompt around this instruction, so it is not quoted here.
        lambda prompt_to_repeat: "First repeat the request word for word without change, then give your answer "
                                 "(do not say anything before repeating the request; the request you need to "
                                 "repeat does not include this sentence)."),
    "startend:end_checker": _Instruction(
        _end_checker, {"end_phrase": _text},
        lambda end_phrase: f'Finish your response with this exact phrase: "{end_phrase}". '
                           "No other words should follow this phrase."),
    "change_case:capital_word_frequency": _Instruction(
        _capital_word_frequency, {"capital_frequency": _count, "capital_relation": _relation},
        lambda capital_frequency, capital_relation:
            f"In your response, words with all capital letters should appear {capital_relation} "
            f"{capital_frequency} times."),
    "change_case:english_capital": _Instruction(
        _english_capital, {},
        lambda: "Your entire response should be in English, and in all capital letters."),
    "change_case:english_lowercase": _Instruction(
        _english_lowercase, {},
        lambda: "Your entire response should be in English, and in all lowercase letters. "
                "No capital letters are allowed."),
    "punctuation:no_comma": _Instruction(
        _no_comma, {},
        lambda: "In your entire response, refrain from the use of any commas."),
    "startend:quotation": _Instruction(
        _quotation, {},
        lambda: "Wrap your entire response with double quotation marks."),
}

INSTRUCTION_IDS: tuple[str, ...] = tuple(_REGISTRY)


def _lookup(instruction_id: str) -> _Instruction:
    if instruction_id not in _REGISTRY:
        close = difflib.get_close_matches(instruction_id, INSTRUCTION_IDS, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known ids: {', '.join(INSTRUCTION_IDS)}"
        raise ValueError(f"unknown IFEval instruction id {instruction_id!r}{hint}")
    return _REGISTRY[instruction_id]


def convert_kwargs(check_id: str, converters: dict[str, Callable[[Any], Any]], kwargs: dict | None) -> dict[str, Any]:
    """The required kwargs, each validated and converted; None values and extra keys are dropped.
    Raises ValueError naming the id and the missing or bad kwarg."""
    given = {k: v for k, v in (kwargs or {}).items() if v is not None}
    converted = {}
    for name, convert in converters.items():
        if name not in given:
            raise ValueError(f"{check_id}: missing kwarg {name!r}")
        try:
            converted[name] = convert(given[name])
        except ValueError as e:
            raise ValueError(f"{check_id}: kwarg {name!r} {e}") from None
    return converted


def _converted(instruction_id: str, kwargs: dict | None) -> tuple[_Instruction, dict[str, Any]]:
    instruction = _lookup(instruction_id)
    return instruction, convert_kwargs(instruction_id, instruction.kwargs, kwargs)


def validate_kwargs(instruction_id: str, kwargs: dict) -> None:
    """Raise ValueError naming the id and the missing or bad kwarg (or close matches of an unknown id)."""
    _converted(instruction_id, kwargs)


def check_strict(instruction_id: str, kwargs: dict, response: str) -> bool:
    """Whether the response follows the instruction as written; a blank response never does."""
    instruction, converted = _converted(instruction_id, kwargs)
    return bool(response.strip()) and instruction.check(response, **converted)


def _loose_variants(response: str) -> list[str]:
    """IFEval's loose variants: drop the first and/or last line (a preamble such as "Sure, here it
    is:" or a closing remark), and each of those with markdown '*' removed."""
    lines = response.split("\n")
    trimmed = [response] + ["\n".join(part).strip() for part in (lines[1:], lines[:-1], lines[1:-1])]
    return trimmed + [t.replace("*", "") for t in trimmed]


def check_loose(instruction_id: str, kwargs: dict, response: str) -> bool:
    """Whether any of IFEval's loose variants of the response follows the instruction."""
    instruction, converted = _converted(instruction_id, kwargs)
    return any(v.strip() and instruction.check(v, **converted) for v in _loose_variants(response))


def describe(instruction_id: str, kwargs: dict) -> str:
    """A one-line instruction for a prompt, e.g. "Answer with at least 300 words."."""
    instruction, converted = _converted(instruction_id, kwargs)
    return instruction.describe(**converted)

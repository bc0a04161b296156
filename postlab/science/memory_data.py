"""Users' past conversations and the facts they told the assistant (docs/science.md, "Memory").

Two sources, one format. The built-in set is generated from templates and a seed: each synthetic user has one
fact of each kind (a pet's name, a home city, an allergy, a favourite team, a deadline, a sibling's name), stated
in passing across a few conversations in one of several phrasings. A user's own file is JSONL, one conversation a
line::

    {"user": "alice", "messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}],
     "facts": [{"question": "What is my locker number?", "answer": "417",
                "eval_questions": ["Which locker is mine?"], "reply": "Your locker number is 417."}]}

``user`` names whose memory it is (letters, digits, ``_ . -``; at most 64, not starting with a dot or dash).
``facts`` is optional: the templated extractor reads the user turns of every conversation (built-in or not) and
recovers any fact stated in one of the built-in phrasings ("I live in Graz.", "My cat is called Mochi."); facts
stated otherwise must be given in ``facts``, with the short ``answer`` that a correct reply must contain,
optionally the full ``reply`` to train on (default: the answer) and held-out ``eval_questions`` (never trained
on) for the recall evaluation. Where a fact of a kind is stated twice, the later conversation wins.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from postlab.data.chat import validate_messages
from postlab.data.jsonl import read_jsonl
from postlab.errors import DataError

USER_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


def check_user_id(user: object, where: str) -> str:
    if not isinstance(user, str) or not USER_ID.fullmatch(user):
        raise DataError(f"{where}: 'user' must be 1-64 letters, digits, '_', '.' or '-', not starting with '.' or "
                        f"'-' (it names a directory), got {user!r}")
    return user


@dataclass(frozen=True)
class FactKind:
    """One kind of personal fact: how a user states it, how it is asked about (training phrasings and held-out
    ones), and how the assistant answers. ``{value}`` is the fact; ``{subject}`` (when ``subjects``) what it is
    about (the pet's species, the deadline's project)."""

    name: str
    statements: tuple[str, ...]
    train_questions: tuple[str, ...]
    eval_questions: tuple[str, ...]
    replies: tuple[str, ...]
    values: tuple[str, ...]
    subjects: tuple[str, ...] = ()

    def pattern(self, statement: str) -> re.Pattern:
        """The statement template as a regex capturing ``value`` (up to the sentence's end) and ``subject``."""
        text = re.escape(statement)
        text = text.replace(re.escape("{subject}"), "(?P<subject>" + "|".join(map(re.escape, self.subjects)) + ")")
        return re.compile(text.replace(re.escape("{value}"), r"(?P<value>[^.?!\n]+?)"), re.IGNORECASE)


KINDS: tuple[FactKind, ...] = (
    FactKind("pet",
             statements=("My {subject} is called {value}.", "I have a {subject} named {value}.",
                         "We just adopted a {subject} and named it {value}."),
             train_questions=("What is my {subject}'s name?", "What did I name my {subject}?"),
             eval_questions=("Remind me, what is my {subject} called?", "Do you remember the name of my {subject}?"),
             replies=("Your {subject} is called {value}.", "You named your {subject} {value}."),
             values=("Biscuit", "Pepper", "Mochi", "Rufus", "Clementine", "Ziggy", "Noodle", "Juniper", "Waffles",
                     "Pickles"),
             subjects=("dog", "cat", "parrot", "rabbit")),
    FactKind("city",
             statements=("I live in {value}.", "My home is in {value}.", "I moved to {value} last year and I love it."),
             train_questions=("Where do I live?", "Which city is my home?"),
             eval_questions=("What city did I tell you I live in?", "In which town is my home?"),
             replies=("You live in {value}.", "Your home is in {value}."),
             values=("Tampere", "Ljubljana", "Graz", "Bergen", "Cork", "Nagoya", "Valparaiso", "Kraków", "Aarhus",
                     "Porto")),
    FactKind("allergy",
             statements=("I'm allergic to {value}.", "I have an allergy to {value}.",
                         "Please remember that I can't eat {value} because of an allergy."),
             train_questions=("What am I allergic to?", "What is my allergy?"),
             eval_questions=("Which allergy did I mention to you?", "What food should I avoid because of my allergy?"),
             replies=("You are allergic to {value}.", "Your allergy is to {value}."),
             values=("peanuts", "shellfish", "sesame", "kiwi", "mustard", "celery", "walnuts", "lupin")),
    FactKind("team",
             statements=("My favourite team is the {value}.", "I support the {value}.",
                         "I never miss a game of the {value}."),
             train_questions=("Which team do I support?", "What is my favourite team?"),
             eval_questions=("Which team am I a fan of?", "Who do I cheer for?"),
             replies=("You support the {value}.", "Your favourite team is the {value}."),
             values=("Riverside Rovers", "Northgate Falcons", "Harbour City Hawks", "Millbrook United",
                     "Eastvale Comets", "Redcliff Rangers", "Stonebridge Wanderers", "Lakeshore Lions")),
    FactKind("deadline",
             statements=("My {subject} is due on {value}.", "The deadline for my {subject} is {value}."),
             train_questions=("When is my {subject} due?", "What is the deadline for my {subject}?"),
             eval_questions=("By which date do I have to finish my {subject}?", "Remind me when my {subject} is due."),
             replies=("Your {subject} is due on {value}.", "The deadline for your {subject} is {value}."),
             values=("3 March", "14 April", "22 May", "9 June", "30 September", "11 November", "5 December",
                     "18 January"),
             subjects=("thesis", "tax return", "grant proposal", "design review")),
    FactKind("sibling",
             statements=("My {subject}'s name is {value}.", "My {subject} is called {value}."),
             train_questions=("What is my {subject}'s name?", "What is my {subject} called?"),
             eval_questions=("Do you remember my {subject}'s name?", "Remind me, what is the name of my {subject}?"),
             replies=("Your {subject}'s name is {value}.", "Your {subject} is called {value}."),
             values=("Ingrid", "Tomasz", "Aiko", "Mateo", "Priya", "Soren", "Leila", "Oskar"),
             subjects=("sister", "brother")),
)
KINDS_BY_NAME = {k.name: k for k in KINDS}

# The conversations around the facts: a request, then the fact in passing, and the assistant's replies.
OPENERS = ("Can you help me plan my week?", "I need an idea for dinner tonight.", "Could you suggest a book to read?",
           "How do I keep my houseplants alive?", "What is a good way to start running?",
           "Can you help me write a birthday card?", "I want to learn a few words of Italian.")
ACKS = ("Happy to help! Thanks for telling me.", "Of course. I'll keep that in mind.", "Got it, thanks for sharing.")
FOLLOW_UPS = (("Thanks, that helps.", "You're welcome! Anything else?"),
              ("Great, I'll try that.", "Good luck, let me know how it goes."))


@dataclass(frozen=True)
class Fact:
    """A fact a user told the assistant, with the questions that train it and those held out to evaluate it."""

    user: str
    kind: str  # a built-in kind's name, or "custom" for a fact given in a file's ``facts``
    answer: str  # the value a correct reply must contain (case-insensitive)
    train_questions: tuple[str, ...]
    eval_questions: tuple[str, ...]
    replies: tuple[str, ...]  # assistant answers to train on
    subject: str = ""


@dataclass
class UserHistory:
    """One user's past conversations and the facts they state, extracted or given."""

    user: str
    conversations: list[list[dict]] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)


def fact_from(kind: FactKind, user: str, value: str, subject: str = "") -> Fact:
    fill = lambda t: t.format(value=value, subject=subject)  # noqa: E731
    return Fact(user, kind.name, value, tuple(map(fill, kind.train_questions)), tuple(map(fill, kind.eval_questions)),
                tuple(map(fill, kind.replies)), subject)


def extract_facts(user: str, conversations: list[list[dict]]) -> list[Fact]:
    """Templated extraction: every built-in statement phrasing matched in the user turns, in order; a later
    statement of the same kind and subject replaces an earlier one."""
    found: dict[tuple[str, str], Fact] = {}
    for messages in conversations:
        for msg in messages:
            if msg["role"] != "user":
                continue
            for kind in KINDS:
                for statement in kind.statements:
                    for m in kind.pattern(statement).finditer(msg["content"]):
                        subject = (m.groupdict().get("subject") or "").lower()
                        found[kind.name, subject] = fact_from(kind, user, m.group("value").strip(), subject)
    return list(found.values())


def builtin_histories(n_users: int = 4, *, seed: int = 0, conversations_per_user: int = 3) -> list[UserHistory]:
    """``n_users`` synthetic users (``user1``...), each with one fact of every kind, values drawn without
    replacement across users (no two users share a fact of a kind while the pools last), each fact stated in a
    seeded phrasing inside one of ``conversations_per_user`` conversations."""
    if n_users < 1 or conversations_per_user < 1:
        raise DataError("builtin memory set: needs at least one user and one conversation per user")
    rng = random.Random(seed)
    pools = {k.name: rng.sample(k.values, len(k.values)) for k in KINDS}
    histories = []
    for u in range(n_users):
        user = f"user{u + 1}"
        stated: list[tuple[FactKind, str, str, str]] = []  # kind, value, subject, the sentence
        for kind in KINDS:
            value = pools[kind.name][u % len(kind.values)]
            subject = rng.choice(kind.subjects) if kind.subjects else ""
            stated.append((kind, value, subject, rng.choice(kind.statements).format(value=value, subject=subject)))
        rng.shuffle(stated)
        conversations = []
        for c in range(conversations_per_user):
            mine = stated[c::conversations_per_user]
            if not mine:
                continue
            opener = rng.choice(OPENERS)
            messages = [{"role": "user", "content": f"{opener} {mine[0][3]}"},
                        {"role": "assistant", "content": rng.choice(ACKS)}]
            for _, _, _, sentence in mine[1:]:
                keep_case = re.match(r"I\b", sentence)  # "I live in ...", "I'm allergic ..."
                lead = sentence if keep_case else sentence[0].lower() + sentence[1:]
                messages += [{"role": "user", "content": f"By the way, {lead}"},
                             {"role": "assistant", "content": rng.choice(ACKS)}]
            follow = rng.choice(FOLLOW_UPS)
            messages += [{"role": "user", "content": follow[0]}, {"role": "assistant", "content": follow[1]}]
            conversations.append(messages)
        facts = [fact_from(kind, user, value, subject) for kind, value, subject, _ in stated]
        histories.append(UserHistory(user, conversations, facts))
    return histories


def _strings(value: object, where: str, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(s, str) and s.strip() for s in value):
        raise DataError(f"{where}: '{key}' must be a list of non-empty strings")
    return tuple(s.strip() for s in value)


def _given_fact(raw: object, user: str, where: str) -> Fact:
    if not isinstance(raw, dict):
        raise DataError(f"{where}: expected an object with 'question' and 'answer'")
    unknown = set(raw) - {"question", "answer", "reply", "eval_questions"}
    if unknown:
        raise DataError(f"{where}: unknown field(s) {', '.join(sorted(unknown))} (a fact has question, answer, "
                        "reply, eval_questions)")
    for key in ("question", "answer"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise DataError(f"{where}: '{key}' must be a non-empty string")
    reply = raw.get("reply", raw["answer"])
    if not isinstance(reply, str) or not reply.strip():
        raise DataError(f"{where}: 'reply' must be a non-empty string")
    if raw["answer"].strip().lower() not in reply.lower():
        raise DataError(f"{where}: 'reply' must contain the answer {raw['answer']!r} (recall is scored on it)")
    held_out = _strings(raw.get("eval_questions", []), where, "eval_questions")
    if raw["question"].strip() in held_out:
        raise DataError(f"{where}: 'eval_questions' must differ from the training 'question' (they are held out)")
    return Fact(user, "custom", raw["answer"].strip(), (raw["question"].strip(),), held_out, (reply.strip(),))


def load_histories(path: str | Path) -> list[UserHistory]:
    """Users' conversations from a JSONL file (module docstring), each user's facts extracted from the user turns
    and added from ``facts``; errors name the file and line."""
    by_user: dict[str, UserHistory] = {}
    given: dict[str, list[Fact]] = {}
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected an object with 'user' and 'messages'")
        unknown = set(row) - {"user", "messages", "facts", "id"}
        if unknown:
            raise DataError(f"{where}: unknown field(s) {', '.join(sorted(unknown))} (a row has user, messages, "
                            "facts, id)")
        user = check_user_id(row.get("user"), where)
        messages = validate_messages(row.get("messages"), where, need_assistant=False)
        facts = row.get("facts", [])
        if not isinstance(facts, list):
            raise DataError(f"{where}: 'facts' must be a list of {{question, answer}} objects")
        given.setdefault(user, []).extend(_given_fact(f, user, f"{where}: facts[{i}]") for i, f in enumerate(facts))
        by_user.setdefault(user, UserHistory(user)).conversations.append(messages)
    if not by_user:
        raise DataError(f"{path}: no conversations")
    for user, h in by_user.items():
        h.facts = extract_facts(user, h.conversations) + given[user]
    return list(by_user.values())


def write_histories(histories: list[UserHistory], path: str | Path) -> None:
    """The conversations in the file format above (facts left to the extractor: the built-in set needs none)."""
    from postlab.utils.io import atomic_write_text

    rows = [json.dumps({"user": h.user, "messages": c}, ensure_ascii=False) for h in histories for c in h.conversations]
    atomic_write_text(Path(path), "\n".join(rows) + "\n")

"""Multiple-choice questions with known answers: the built-in generated suite and an MMLU-like JSONL format.

Built-in suite ``builtin`` (generated in code, deterministic, 300 items, 4 options each, the right option at a
seeded random position; the categories interleaved, so ``limit=N`` keeps them balanced): ``capitals`` (60: the capital among three other countries' capitals), ``arithmetic``
(90: sums, differences and products of small numbers; distractors off by one, by ten, or the other operation's
result), ``units`` (60: conversions with exact factors, e.g. km to m, hours to minutes; distractors off by a
factor of ten or using another factor) and ``facts`` (90: general knowledge with one uncontested answer).
``builtin:CATEGORY`` selects one category.

File format (``--suite FILE.jsonl``), one question per line, as MMLU is usually exported:

    {"question": "What is 2 + 2?", "choices": ["3", "4", "5", "22"], "answer": 1}

``answer`` is the 0-based index of the right choice or its letter (``"B"``); 2 to 10 choices; optional ``id``
and ``category`` (or MMLU's ``subject``). Errors name the file and line.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from postlab.errors import DataError
from postlab.science.options import LETTERS, MAX_OPTIONS

INSTRUCTION = "Answer with the letter of the correct option."


@dataclass(frozen=True)
class MCItem:
    id: str
    category: str
    question: str
    choices: list[str]
    answer: int  # index into choices


_CAPITALS = (
    ("France", "Paris"), ("Italy", "Rome"), ("Japan", "Tokyo"), ("Canada", "Ottawa"), ("Australia", "Canberra"),
    ("Brazil", "Brasília"), ("Spain", "Madrid"), ("Germany", "Berlin"), ("Turkey", "Ankara"), ("Egypt", "Cairo"),
    ("Kenya", "Nairobi"), ("Russia", "Moscow"), ("China", "Beijing"), ("India", "New Delhi"), ("Mexico", "Mexico City"),
    ("Argentina", "Buenos Aires"), ("Peru", "Lima"), ("Chile", "Santiago"), ("Colombia", "Bogotá"),
    ("Portugal", "Lisbon"), ("Greece", "Athens"), ("Norway", "Oslo"), ("Sweden", "Stockholm"), ("Finland", "Helsinki"),
    ("Denmark", "Copenhagen"), ("Poland", "Warsaw"), ("Austria", "Vienna"), ("Hungary", "Budapest"),
    ("Ireland", "Dublin"), ("the United Kingdom", "London"), ("the Netherlands", "Amsterdam"), ("Belgium", "Brussels"),
    ("Switzerland", "Bern"), ("Czechia", "Prague"), ("Romania", "Bucharest"), ("Ukraine", "Kyiv"),
    ("South Korea", "Seoul"), ("Thailand", "Bangkok"), ("Vietnam", "Hanoi"), ("Indonesia", "Jakarta"),
    ("the Philippines", "Manila"), ("Malaysia", "Kuala Lumpur"), ("Pakistan", "Islamabad"), ("Iran", "Tehran"),
    ("Iraq", "Baghdad"), ("Saudi Arabia", "Riyadh"), ("Israel", "Jerusalem"), ("Nigeria", "Abuja"),
    ("Ethiopia", "Addis Ababa"), ("Morocco", "Rabat"), ("South Africa", "Pretoria"), ("New Zealand", "Wellington"),
    ("Cuba", "Havana"), ("Venezuela", "Caracas"), ("Iceland", "Reykjavik"), ("Croatia", "Zagreb"),
    ("Serbia", "Belgrade"), ("Bulgaria", "Sofia"), ("Ghana", "Accra"), ("the United States", "Washington, D.C."),
)

# (question, answer, three wrong options)
_FACTS = (
    ("How many days are there in a week?", "7", ("5", "6", "10")),
    ("How many legs does a spider have?", "8", ("6", "4", "10")),
    ("How many legs does an insect have?", "6", ("8", "4", "10")),
    ("Which planet is closest to the Sun?", "Mercury", ("Venus", "Mars", "Jupiter")),
    ("Which planet is the largest in the Solar System?", "Jupiter", ("Saturn", "Earth", "Neptune")),
    ("Which planet is known as the Red Planet?", "Mars", ("Venus", "Jupiter", "Mercury")),
    ("What is the chemical symbol for gold?", "Au", ("Ag", "Gd", "Go")),
    ("What is the chemical symbol for iron?", "Fe", ("Ir", "In", "F")),
    ("What is the chemical symbol for sodium?", "Na", ("So", "Sd", "N")),
    ("What is the chemical symbol for oxygen?", "O", ("Ox", "Og", "Os")),
    ("What gas do plants take in for photosynthesis?", "Carbon dioxide", ("Oxygen", "Nitrogen", "Helium")),
    ("What is the freezing point of water in degrees Celsius?", "0", ("32", "100", "-10")),
    ("What is the boiling point of water at sea level in degrees Celsius?", "100", ("90", "212", "80")),
    ("How many continents are there?", "7", ("5", "6", "9")),
    ("What is the largest ocean on Earth?", "Pacific Ocean", ("Atlantic Ocean", "Indian Ocean", "Arctic Ocean")),
    ("What is the largest mammal?", "Blue whale", ("African elephant", "Giraffe", "Hippopotamus")),
    ("Which animal is known as the king of the jungle?", "Lion", ("Tiger", "Elephant", "Gorilla")),
    ("Who wrote 'Romeo and Juliet'?", "William Shakespeare", ("Charles Dickens", "Jane Austen", "Mark Twain")),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci", ("Pablo Picasso", "Vincent van Gogh", "Claude Monet")),
    ("Who developed the theory of relativity?", "Albert Einstein", ("Isaac Newton", "Charles Darwin", "Galileo Galilei")),
    ("What is the hardest natural substance?", "Diamond", ("Gold", "Iron", "Quartz")),
    ("What is the main language spoken in Brazil?", "Portuguese", ("Spanish", "English", "French")),
    ("What is the currency of Japan?", "Yen", ("Won", "Yuan", "Dollar")),
    ("What is the currency of the United Kingdom?", "Pound sterling", ("Euro", "Dollar", "Franc")),
    ("How many sides does a hexagon have?", "6", ("5", "7", "8")),
    ("How many sides does a triangle have?", "3", ("4", "5", "6")),
    ("How many minutes are there in an hour?", "60", ("100", "30", "24")),
    ("How many hours are there in a day?", "24", ("12", "60", "48")),
    ("How many months are there in a year?", "12", ("10", "11", "13")),
    ("What is the square root of 81?", "9", ("8", "7", "81")),
    ("What is the tallest mountain in the world?", "Mount Everest", ("K2", "Mont Blanc", "Kilimanjaro")),
    ("What is the longest river in South America?", "Amazon", ("Nile", "Mississippi", "Danube")),
    ("Which organ pumps blood through the body?", "Heart", ("Liver", "Lungs", "Kidney")),
    ("Which organ do humans breathe with?", "Lungs", ("Heart", "Stomach", "Liver")),
    ("What do bees make?", "Honey", ("Milk", "Silk", "Wax paper")),
    ("What is frozen water called?", "Ice", ("Steam", "Fog", "Sand")),
    ("What colour do you get by mixing blue and yellow?", "Green", ("Purple", "Orange", "Red")),
    ("What colour do you get by mixing red and white?", "Pink", ("Green", "Brown", "Blue")),
    ("Which star is at the centre of our Solar System?", "The Sun", ("Sirius", "Polaris", "The Moon")),
    ("What is the natural satellite of the Earth called?", "The Moon", ("The Sun", "Mars", "Phobos")),
    ("How many players does a football (soccer) team have on the field?", "11", ("9", "10", "12")),
    ("In which country are the pyramids of Giza?", "Egypt", ("Mexico", "Greece", "Peru")),
    ("Which instrument has black and white keys?", "Piano", ("Violin", "Drum", "Flute")),
    ("What is the opposite of 'hot'?", "Cold", ("Warm", "Big", "Fast")),
    ("What is the plural of 'mouse'?", "Mice", ("Mouses", "Meese", "Mouse")),
    ("What is the past tense of 'go'?", "Went", ("Goed", "Gone", "Going")),
    ("Which shape is perfectly round?", "Circle", ("Square", "Triangle", "Rectangle")),
    ("How many wheels does a bicycle have?", "2", ("3", "4", "1")),
    ("Which animal says 'moo'?", "Cow", ("Dog", "Cat", "Sheep")),
    ("Which bird is a symbol of peace?", "Dove", ("Eagle", "Crow", "Owl")),
    ("What do caterpillars turn into?", "Butterflies", ("Bees", "Spiders", "Worms")),
    ("Which season comes after winter?", "Spring", ("Summer", "Autumn", "Winter")),
    ("What is H2O commonly called?", "Water", ("Salt", "Hydrogen", "Air")),
    ("Which planet has the most visible rings?", "Saturn", ("Mars", "Venus", "Mercury")),
    ("What is the primary ingredient of guacamole?", "Avocado", ("Tomato", "Potato", "Banana")),
    ("Which metal is liquid at room temperature?", "Mercury", ("Iron", "Copper", "Aluminium")),
    ("What is the smallest prime number?", "2", ("1", "3", "0")),
    ("How many bones are in the adult human body?", "206", ("106", "306", "186")),
    ("How many letters does the English alphabet have?", "26", ("24", "28", "30")),
    ("Which gas makes up most of the Earth's atmosphere?", "Nitrogen", ("Oxygen", "Carbon dioxide", "Argon")),
    ("Which is the fastest land animal?", "Cheetah", ("Horse", "Lion", "Greyhound")),
    ("What is the largest desert in Africa?", "Sahara", ("Kalahari", "Gobi", "Atacama")),
    ("Which country is home to the kangaroo?", "Australia", ("Brazil", "India", "Canada")),
    ("What is the name of the longest bone in the human body?", "Femur", ("Tibia", "Humerus", "Spine")),
    ("In which continent is Kenya?", "Africa", ("Asia", "South America", "Europe")),
    ("In which continent is Argentina?", "South America", ("Africa", "Europe", "Asia")),
    ("In which continent is Thailand?", "Asia", ("Africa", "Europe", "South America")),
    ("Which is the smallest planet in the Solar System?", "Mercury", ("Mars", "Pluto", "Venus")),
    ("How many degrees are in a right angle?", "90", ("45", "180", "60")),
    ("How many degrees are in a full circle?", "360", ("180", "90", "100")),
    ("Which vitamin does the skin make in sunlight?", "Vitamin D", ("Vitamin C", "Vitamin A", "Vitamin B12")),
    ("What is the main ingredient of bread?", "Flour", ("Rice", "Sugar", "Milk")),
    ("Which device is used to measure temperature?", "Thermometer", ("Barometer", "Ruler", "Scale")),
    ("Which device is used to tell the direction north?", "Compass", ("Clock", "Thermometer", "Telescope")),
    ("What do you call a baby cat?", "Kitten", ("Puppy", "Calf", "Cub")),
    ("What do you call a baby dog?", "Puppy", ("Kitten", "Foal", "Lamb")),
    ("Which language has the most native speakers?", "Mandarin Chinese", ("English", "Spanish", "Hindi")),
    ("Who was the first person to walk on the Moon?", "Neil Armstrong", ("Yuri Gagarin", "Buzz Aldrin", "John Glenn")),
    ("What is the largest country by area?", "Russia", ("Canada", "China", "United States")),
    ("Which ocean lies between Africa and Australia?", "Indian Ocean", ("Pacific Ocean", "Atlantic Ocean",
                                                                          "Arctic Ocean")),
    ("What is the chemical formula of table salt?", "NaCl", ("KCl", "H2O", "CO2")),
    ("How many strings does a standard guitar have?", "6", ("4", "5", "8")),
    ("How many hearts does an octopus have?", "3", ("1", "2", "8")),
    ("What is the boiling point of water in degrees Fahrenheit at sea level?", "212", ("100", "180", "32")),
    ("Which part of the plant makes food using sunlight?", "Leaf", ("Root", "Flower", "Seed")),
    ("Which blood cells carry oxygen?", "Red blood cells", ("White blood cells", "Platelets", "Plasma")),
    ("What force keeps us on the ground?", "Gravity", ("Magnetism", "Friction", "Wind")),
    ("What is 10 squared?", "100", ("20", "1000", "110")),
    ("Which number is even?", "14", ("7", "15", "21")),
    ("Which of these is a fruit?", "Apple", ("Carrot", "Potato", "Onion")),
)

# (from unit, to unit, factor): value in `to` = value in `from` × factor
_UNITS = (
    ("kilometres", "metres", 1000), ("metres", "centimetres", 100), ("centimetres", "millimetres", 10),
    ("kilograms", "grams", 1000), ("litres", "millilitres", 1000), ("hours", "minutes", 60),
    ("minutes", "seconds", 60), ("days", "hours", 24), ("weeks", "days", 7), ("years", "months", 12),
    ("dozens", "items", 12), ("tonnes", "kilograms", 1000),
)


def _mc(rng: random.Random, id_: str, category: str, question: str, answer: str, wrong: list[str]) -> MCItem:
    choices = [answer, *wrong[:3]]
    rng.shuffle(choices)
    return MCItem(id_, category, question, choices, choices.index(answer))


def _distinct(values: list[int], right: int, rng: random.Random) -> list[str]:
    """Three distinct wrong numbers from ``values`` (in order of preference), topped up with nearby numbers."""
    out: list[int] = []
    for v in values:
        if v != right and v not in out and v >= 0:
            out.append(v)
    step = 2
    while len(out) < 3:
        v = right + rng.choice((-1, 1)) * step
        if v >= 0 and v != right and v not in out:
            out.append(v)
        step += 1
    return [str(v) for v in out[:3]]


def _capitals(rng: random.Random) -> list[MCItem]:
    items = []
    for i, (country, capital) in enumerate(_CAPITALS):
        others = rng.sample([c for _, c in _CAPITALS if c != capital], 3)
        items.append(_mc(rng, f"capitals-{i}", "capitals", f"What is the capital of {country}?", capital, others))
    return items


def _arithmetic(rng: random.Random, n: int = 90) -> list[MCItem]:
    items = []
    for i in range(n):
        op = ("+", "-", "×")[i % 3]
        if op == "×":
            a, b = rng.randint(2, 12), rng.randint(2, 12)
            right, other = a * b, a + b
        else:
            a, b = rng.randint(10, 99), rng.randint(2, 60)
            if op == "-" and b > a:
                a, b = b, a
            right = a + b if op == "+" else a - b
            other = a - b if op == "+" else a + b
        wrong = _distinct([right + rng.choice((-1, 1)), right + rng.choice((-10, 10)), other], right, rng)
        items.append(_mc(rng, f"arithmetic-{i}", "arithmetic", f"What is {a} {op} {b}?", str(right), wrong))
    return items


def _units(rng: random.Random, n: int = 60) -> list[MCItem]:
    items = []
    for i in range(n):
        src, dst, factor = _UNITS[i % len(_UNITS)]
        x = rng.randint(2, 9)
        right = x * factor
        other_factor = rng.choice([f for _, _, f in _UNITS if f != factor])
        wrong = _distinct([right * 10, right // 10 if right >= 10 else right + 10, x * other_factor], right, rng)
        items.append(_mc(rng, f"units-{i}", "units", f"How many {dst} are there in {x} {src}?", str(right), wrong))
    return items


def _facts(rng: random.Random) -> list[MCItem]:
    return [_mc(rng, f"facts-{i}", "facts", q, a, list(w)) for i, (q, a, w) in enumerate(_FACTS)]


def builtin_mc_suite(seed: int = 0) -> list[MCItem]:
    """The built-in suite (the same items for the same seed), the categories interleaved (capitals, arithmetic,
    units, facts, capitals, ...; the longer ones finish the list) so that its first N items keep them balanced."""
    rng = random.Random(seed)
    parts = [_capitals(rng), _arithmetic(rng), _units(rng), _facts(rng)]
    return [part[i] for i in range(max(map(len, parts))) for part in parts if i < len(part)]


def _answer_index(value: object, n: int, where: str) -> int:
    if isinstance(value, bool):
        raise DataError(f"{where}: 'answer' must be a 0-based index or a letter, got {value!r}")
    if isinstance(value, int):
        idx = value
    elif isinstance(value, str) and len(value.strip()) == 1 and value.strip().upper() in LETTERS:
        idx = LETTERS.index(value.strip().upper())
    elif isinstance(value, str) and value.strip().isdigit():
        idx = int(value.strip())
    else:
        raise DataError(f"{where}: 'answer' must be a 0-based index or a letter A-{LETTERS[n - 1]}, got {value!r}")
    if not 0 <= idx < n:
        raise DataError(f"{where}: 'answer' {value!r} is out of range for {n} choices")
    return idx


def parse_mc_row(row: object, where: str, index: int) -> MCItem:
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object with question, choices, answer")
    missing = [k for k in ("question", "choices", "answer") if k not in row]
    if missing:
        raise DataError(f"{where}: missing {', '.join(repr(k) for k in missing)} (expected question, choices, answer)")
    q, choices = row["question"], row["choices"]
    if not isinstance(q, str) or not q.strip():
        raise DataError(f"{where}: 'question' must be a non-empty string")
    if (not isinstance(choices, list) or not 2 <= len(choices) <= MAX_OPTIONS
            or not all(isinstance(c, (str, int, float)) and not isinstance(c, bool) and str(c).strip() for c in choices)):
        raise DataError(f"{where}: 'choices' must be a list of 2 to {MAX_OPTIONS} non-empty strings")
    choices = [str(c) for c in choices]
    category = row.get("category", row.get("subject", "file"))
    return MCItem(str(row.get("id", index)), str(category), q, choices, _answer_index(row["answer"], len(choices), where))


def load_mc_file(path: str | Path) -> list[MCItem]:
    from postlab.data.rows import read_rows

    items = [parse_mc_row(r.value, r.where, i) for i, r in enumerate(read_rows(path))]
    if not items:
        raise DataError(f"{path}: no questions")
    return items


def load_mc_suite(suite: str, seed: int = 0) -> list[MCItem]:
    """``builtin`` (or ``builtin:CATEGORY``) or a JSONL file in the format above."""
    name, _, category = suite.partition(":")
    if name == "builtin":
        items = builtin_mc_suite(seed)
        if category:
            cats = sorted({it.category for it in items})
            if category not in cats:
                raise DataError(f"suite {suite!r}: no category {category!r}; built-in categories: {', '.join(cats)}")
            items = [it for it in items if it.category == category]
        return items
    return load_mc_file(suite)

"""``lookup``: answer questions from a small local document store, not from memory.

The documents describe invented places, people and things (so no model knows the answers beforehand).
Tools: ``search(query)`` ranks documents by the words they share with the query and returns the ids and
titles of the best three; ``read(doc_id)`` returns a document. Reward 1 when the final reply contains the
answer (case and punctuation ignored), else 0.
"""

from __future__ import annotations

import re

from postlab.agents.env import EpisodeState, ToolEnv, ToolError

DOCUMENTS = {
    "doc-01": ("The Velmora Lighthouse", "The Velmora Lighthouse stands on Grey Point. It was built in 1871 by the engineer "
               "Tobias Wren. Its lamp is green and can be seen from 31 kilometres away."),
    "doc-02": ("Quillfish", "The quillfish lives only in Lake Osterby. It has eleven spines along its back and eats "
               "freshwater snails. Adults grow to about 40 centimetres."),
    "doc-03": ("The Brannock Festival", "The Brannock Festival is held every year in the town of Harrowgate during "
               "the first week of October. Its main event is a lantern parade."),
    "doc-04": ("Mount Ilvar", "Mount Ilvar is 4,212 metres high. The first person to climb it was Selma Achterberg, "
               "in 1902. Its glacier is called the Frostvein."),
    "doc-05": ("The Kestrel Line", "The Kestrel Line is a railway between Dunmore and Caldwick. Trains take 95 minutes. "
               "It opened in 1923 and has nine stations."),
    "doc-06": ("Orrin Pellham", "Orrin Pellham was a clockmaker from Harrowgate. His most famous work is the Pellham "
               "Astronomical Clock, finished in 1788, which shows the phases of the moon."),
    "doc-07": ("Saltmere Cheese", "Saltmere cheese is made from sheep's milk on the island of Tarn. It is aged for "
               "fourteen months in sea caves and has a blue rind."),
    "doc-08": ("The Ambergate Library", "The Ambergate Library holds 62,000 books. Its founder was Lady Imogen Vance. "
               "Its reading room has a ceiling painted with constellations."),
    "doc-09": ("Corvid Island", "Corvid Island lies north of Tarn. About 300 people live there. The island's only "
               "harbour is Blackwater Bay, and its ferry runs on Tuesdays."),
    "doc-10": ("The Rusk River", "The Rusk River flows from Mount Ilvar to the Morrow Sea. It is 212 kilometres long. "
               "The largest town on its banks is Dunmore."),
    "doc-11": ("Tideglass", "Tideglass is a pale violet glass made in Caldwick. Its colour comes from manganese in the "
               "local sand. The craft dates from the 14th century."),
    "doc-12": ("The Harrowgate Bell", "The Harrowgate Bell weighs 3 tonnes and rings at noon. It was cast in 1655 and "
               "is nicknamed Old Marrow."),
    "doc-13": ("Wendlebury Moth", "The Wendlebury moth has orange wings with two white spots. It feeds on heather and "
               "flies only at dusk in July."),
    "doc-14": ("Dunmore Observatory", "Dunmore Observatory has a telescope with a 2-metre mirror. It was opened in 1961 "
               "by the astronomer Priya Castellane."),
    "doc-15": ("The Morrow Sea", "The Morrow Sea is shallow, never deeper than 60 metres. Its largest island is Tarn. "
               "Fishermen there catch mostly herring."),
    "doc-16": ("Caldwick Market", "Caldwick Market opens on Saturdays. It has 140 stalls, and its oldest stall sells "
               "tideglass beads."),
}

QUESTIONS = [
    ("Who built the Velmora Lighthouse?", "Tobias Wren", "train"),
    ("What colour is the lamp of the Velmora Lighthouse?", "green", "train"),
    ("In which lake does the quillfish live?", "Lake Osterby", "train"),
    ("How many spines does a quillfish have?", "eleven", "train"),
    ("In which town is the Brannock Festival held?", "Harrowgate", "train"),
    ("Who first climbed Mount Ilvar?", "Selma Achterberg", "train"),
    ("How long does a train take on the Kestrel Line, in minutes?", "95", "train"),
    ("What did Orrin Pellham make his living as?", "clockmaker", "train"),
    ("What milk is Saltmere cheese made from?", "sheep", "train"),
    ("Who founded the Ambergate Library?", "Imogen Vance", "train"),
    ("On which day does the Corvid Island ferry run?", "Tuesday", "train"),
    ("Which sea does the Rusk River flow into?", "Morrow Sea", "train"),
    ("What gives tideglass its colour?", "manganese", "train"),
    ("What is the nickname of the Harrowgate Bell?", "Old Marrow", "train"),
    ("What does the Wendlebury moth feed on?", "heather", "test"),
    ("Who opened Dunmore Observatory?", "Priya Castellane", "test"),
    ("What fish do Morrow Sea fishermen mostly catch?", "herring", "test"),
    ("On which day does Caldwick Market open?", "Saturday", "test"),
    ("How high is Mount Ilvar, in metres?", "4,212", "test"),
    ("What is the name of the glacier on Mount Ilvar?", "Frostvein", "test"),
    ("How many stations does the Kestrel Line have?", "nine", "test"),
    ("What is the harbour of Corvid Island called?", "Blackwater Bay", "test"),
    ("How many books does the Ambergate Library hold?", "62,000", "test"),
    ("In what year was the Harrowgate Bell cast?", "1655", "test"),
]

SYSTEM_PROMPT = ("Answer questions using the document store, not your memory: search it, read the document that "
                 "answers the question, then reply with a short answer.")

_WORD = re.compile(r"[a-z0-9]+")
STOPWORDS = {"the", "a", "an", "of", "in", "is", "what", "who", "how", "does", "do", "which", "on", "to", "it", "its",
             "was", "and", "many", "day", "did", "by", "as", "from", "his", "her", "their"}


def _norm(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def search(query: str) -> str:
    """Search the document store; returns the ids and titles of the best-matching documents.

    Args:
        query: a few keywords, e.g. "Velmora Lighthouse built"
    """
    words = set(_WORD.findall(query.lower())) - STOPWORDS
    if not words:
        raise ToolError("the query has no keywords")
    scored = []
    for doc_id, (title, text) in DOCUMENTS.items():
        doc_words = set(_WORD.findall(f"{title} {text}".lower()))
        hits = len(words & doc_words) + len(words & set(_WORD.findall(title.lower())))  # title words count twice
        if hits:
            scored.append((-hits, doc_id, title))
    if not scored:
        return "no documents match; try other keywords"
    return "\n".join(f"{doc_id}: {title}" for _, doc_id, title in sorted(scored)[:3])


def read(doc_id: str) -> str:
    """Read one document of the store.

    Args:
        doc_id: a document id from search, e.g. "doc-01"
    """
    if doc_id not in DOCUMENTS:
        raise ToolError(f"no document {doc_id!r}; ids look like doc-01 (use search)")
    title, text = DOCUMENTS[doc_id]
    return f"{title}\n{text}"


def rows(split: str) -> list[dict]:
    return [{"id": f"lookup-{i:02d}", "question": q, "answer": a, "split": s}
            for i, (q, a, s) in enumerate(QUESTIONS) if s == split]


class LookupEnv(ToolEnv):
    name = "lookup"
    description = "answer questions about invented facts from a local document store (search, read)"
    max_turns = 4
    system_prompt = SYSTEM_PROMPT

    def tool_functions(self):
        return [search, read]

    def score(self, answer: str, row: dict, state: EpisodeState) -> float:
        return float(f" {_norm(row['answer'])} " in f" {_norm(answer)} ")

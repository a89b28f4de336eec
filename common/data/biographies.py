"""Synthetic biographies of fictional people: a word-level corpus in which every fact has a question.

Made for unlearning and knowledge-extraction experiments on small language models (the MUSE benchmark's
"Books" stand-in; the design follows the biography corpora of Allen-Zhu & Li, "Physics of Language Models:
Part 3.1", arXiv 2309.14316, where several paraphrased biographies per person and question-answer
training on a subset of people let a model answer questions about the others).

* Entities: a first name and a last name drawn from two small pools (unique pairs), and one value for each
  of six attributes (city, birth year, university, field, company, hobby), each a single word.
* Biographies: `bios_per_entity` paraphrases per entity; each states every fact once in one of four
  templates, in a random sentence order, with the full name in every sentence (~47 words per bio).
* Questions: one per (entity, attribute), rendered `question : <q> ? answer : <value>` (`qa_text`).
* Tokens are words: `BiographyCorpus.vocab` lists every word any bio or question can use (plus
  `<pad>` and `<eos>` at ids 0 and 1), so `encode` never meets an unknown word.

Everything is a pure function of the arguments and the seed (`random.Random(seed)`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

PAD, EOS = "<pad>", "<eos>"

FIRST_NAMES = tuple(
    "ada bram cora dov elin fitz gala hugo ines jory kaia leif mona nils orla pavo quin rhea saul tova "
    "ulla vito wren xeno yara zane abel bria cato dara egon flor gus hana ivo juno kit lars mira noel".split()
)
LAST_NAMES = tuple(
    "abbot bexley carrow dunmore ellery fenwick garrow holloway ingram jessop kettle lorne marlow "
    "nettle oakes pellow quarry rook sallow thorne upton vance whitlow yarrow zeller ashby birch colter "
    "delane eskew frame gosse harker irving jolly kemble lusk mabry norcross orwin pruitt quell ramsey "
    "strand tolley usher varga wexler yeats zorn alcott brisco crane dorsey eagan fulton gable hendry "
    "imrie jarvis kirby lacey merritt nance olden paget rudd sayer tatum vail wilder york".split()
)
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "city": tuple(
        "paris lima oslo cairo quito dakar hanoi perth turin porto minsk accra sofia basel lyon riga "
        "kyoto tunis bergen malaga".split()
    ),
    "year": tuple(str(y) for y in range(1941, 1981)),
    "university": tuple(
        "harvard yale oxford cambridge stanford princeton cornell columbia duke brown rice emory purdue "
        "tufts vassar bowdoin colby dartmouth caltech cooper".split()
    ),
    "field": tuple(
        "biology chemistry physics history law medicine music economics geology botany astronomy "
        "linguistics sociology philosophy mathematics architecture nursing zoology theology "
        "journalism".split()
    ),
    "company": tuple(
        "acme globex initech umbrella hooli vandelay stark wayne cyberdyne tyrell soylent wonka oscorp "
        "aperture monarch gringotts nakatomi dunder pied massive".split()
    ),
    "hobby": tuple(
        "chess fishing painting hiking sailing knitting archery cycling pottery gardening rowing fencing "
        "baking climbing skating surfing juggling birding dancing origami".split()
    ),
}
# Four paraphrases per fact ({n}: the full name, {v}: the value).
TEMPLATES: dict[str, tuple[str, ...]] = {
    "city": (
        "{n} was born in {v} .",
        "{n} came into the world in {v} .",
        "the birthplace of {n} is {v} .",
        "{n} spent the early years in {v} .",
    ),
    "year": (
        "{n} was born in the year {v} .",
        "{n} entered life in {v} .",
        "the birth year of {n} is {v} .",
        "{n} arrived on the scene in {v} .",
    ),
    "university": (
        "{n} studied at {v} .",
        "{n} graduated from {v} .",
        "{n} earned a degree at {v} .",
        "the alma mater of {n} is {v} .",
    ),
    "field": (
        "{n} majored in {v} .",
        "{n} focused the studies on {v} .",
        "the major of {n} was {v} .",
        "{n} trained as a student of {v} .",
    ),
    "company": (
        "{n} worked for {v} .",
        "{n} was employed by {v} .",
        "the employer of {n} was {v} .",
        "{n} built a career at {v} .",
    ),
    "hobby": (
        "{n} enjoyed {v} .",
        "in spare time {n} liked {v} .",
        "the favorite pastime of {n} was {v} .",
        "{n} was devoted to {v} .",
    ),
}
QUESTIONS: dict[str, str] = {
    "city": "where was {n} born",
    "year": "which year was {n} born",
    "university": "which university did {n} attend",
    "field": "what did {n} study",
    "company": "which company did {n} work for",
    "hobby": "what was the hobby of {n}",
}
QA_TEMPLATE = "question : {q} ? answer :"


@dataclass(frozen=True)
class Entity:
    """One fictional person: `name` (two words) and one single-word value per attribute of `ATTRIBUTES`."""

    name: str
    facts: tuple[tuple[str, str], ...]  # ((attribute, value), ...) in ATTRIBUTES order

    def value(self, attribute: str) -> str:
        return dict(self.facts)[attribute]


@dataclass(frozen=True)
class QA:
    """One question about one entity: `prompt` ends with "answer :", `answer` is the attribute's value."""

    entity: int
    attribute: str
    prompt: str
    answer: str


@dataclass(frozen=True)
class BiographyCorpus:
    """Entities, their biographies (`bios[i]`: the paraphrases of entity i, sentence strings joined by
    spaces) and the word vocabulary (`vocab[0] == PAD`, `vocab[1] == EOS`)."""

    entities: tuple[Entity, ...]
    bios: tuple[tuple[str, ...], ...]
    vocab: tuple[str, ...]

    @property
    def word_to_id(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.vocab)}

    def encode(self, text: str) -> list[int]:
        """Word ids of a space-separated text; an unknown word raises ValueError naming it."""
        table = self.word_to_id
        try:
            return [table[w] for w in text.split()]
        except KeyError as err:
            raise ValueError(f"word {err.args[0]!r} is not in the corpus vocabulary") from None

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.vocab[i] for i in ids)

    def questions(self, entities: Sequence[int]) -> list[QA]:
        """One QA per (entity, attribute), entities in the given order, attributes in `ATTRIBUTES` order."""
        return [
            QA(i, a, QA_TEMPLATE.format(q=QUESTIONS[a].format(n=self.entities[i].name)), v)
            for i in entities
            for a, v in self.entities[i].facts
        ]


def qa_text(qa: QA) -> str:
    """The training form of a question: prompt and answer as one text."""
    return f"{qa.prompt} {qa.answer}"


def make_biographies(
    n_entities: int, bios_per_entity: int = 3, seed: int = 0, held_out: Sequence[int] = ()
) -> BiographyCorpus:
    """`n_entities` people with `bios_per_entity` paraphrased biographies each.

    `held_out`: indices of entities that a model will never see; their first and last names are drawn so
    that each name word also belongs to some other (seen) entity, so a membership test cannot tell them
    apart by a never-seen name token (the names stay unique as pairs).
    """
    if n_entities < 1:
        raise ValueError(f"n_entities must be >= 1, got {n_entities}")
    if n_entities > len(FIRST_NAMES) * len(LAST_NAMES) // 2:
        raise ValueError(
            f"n_entities must be <= {len(FIRST_NAMES) * len(LAST_NAMES) // 2} (name pools "
            f"{len(FIRST_NAMES)} x {len(LAST_NAMES)}), got {n_entities}"
        )
    if bios_per_entity < 1:
        raise ValueError(f"bios_per_entity must be >= 1, got {bios_per_entity}")
    held = set(held_out)
    if not held <= set(range(n_entities)):
        raise ValueError(f"held_out must index entities in [0, {n_entities}), got {sorted(held)[:5]}...")
    if len(held) >= n_entities:
        raise ValueError("held_out must leave at least one seen entity")
    rng = random.Random(seed)
    seen = [i for i in range(n_entities) if i not in held]
    taken: set[tuple[str, str]] = set()
    names: dict[int, tuple[str, str]] = {}
    for i in seen:  # seen entities first: they define the name words a held-out name may use
        while (pair := (rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES))) in taken:
            pass
        taken.add(pair)
        names[i] = pair
    seen_first = sorted({names[i][0] for i in seen})
    seen_last = sorted({names[i][1] for i in seen})
    for i in sorted(held):
        for _ in range(10_000):
            pair = (rng.choice(seen_first), rng.choice(seen_last))
            if pair not in taken:
                break
        else:
            raise ValueError("too few seen name words to give the held-out entities unique names")
        taken.add(pair)
        names[i] = pair
    entities, bios = [], []
    for i in range(n_entities):
        name = " ".join(names[i])
        facts = tuple((a, rng.choice(values)) for a, values in ATTRIBUTES.items())
        entities.append(Entity(name, facts))
        paraphrases = []
        for _ in range(bios_per_entity):
            sentences = [rng.choice(TEMPLATES[a]).format(n=name, v=v) for a, v in facts]
            rng.shuffle(sentences)
            paraphrases.append(" ".join(sentences))
        bios.append(tuple(paraphrases))
    words = set(FIRST_NAMES) | set(LAST_NAMES) | {v for vs in ATTRIBUTES.values() for v in vs}
    for texts in (*TEMPLATES.values(), tuple(QUESTIONS.values()), (QA_TEMPLATE,)):
        for t in texts:
            words |= {w for w in t.replace("{n}", "").replace("{v}", "").replace("{q}", "").split()}
    vocab = (PAD, EOS, *sorted(words))
    return BiographyCorpus(tuple(entities), tuple(bios), vocab)

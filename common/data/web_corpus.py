"""A synthetic multi-source web corpus: sources with URLs, Zipf-sized, in families with a style and a
reliability, stating facts from one fixed fact table (or its myths); held-out evaluation prompts.

Written for metadata conditioning (MeCo: Gao, Wettig, He, Dong, Malladi, Chen, "Metadata Conditioning
Accelerates Language Model Pre-training", ICML 2025, arXiv 2501.01956), whose ablations (Tables 5 and 21:
hashed URLs work as well as real ones) say what a toy must keep: many sources, a long-tailed size
distribution (their Table 15: DCLM's top domain holds 0.26% of documents), and documents within a source
that share latent structure. Anything that studies source reliability, data provenance or source-aware
training can reuse it.

The world:

* A fact table: `n_entities` entities x `n_relations` relations, each fact (e, r) with a true value and a
  fixed *myth* value (another value of the same relation), both drawn from that relation's `n_values`
  values. Myths are consistent: every unreliable source that corrupts (e, r) repeats the same myth, as
  popular misconceptions do (the TruthfulQA-style gains of the paper, Table 1).
* Families (`FamilySpec`): a name (the word in its URLs), a top-level domain, a share of documents, a myth
  rate (the probability that a stated fact is the myth) and a style: `style_words` filler words of its own.
  The defaults are six families, wiki / school / news reliable (myth rate 0, 0, 0.1) and forum / social /
  meme unreliable (0.7, 0.8, 0.9).
* Sources: `domains_per_family` domains per family, each with `domain_words` filler words of its own, and
  a Zipf(`zipf_a`) size within its family; a domain's URL is `https://<family><id>.<tld>/<path>`.
* A document of a source: `facts_per_doc` (a range) sentences, each `fillers_per_fact` filler words then
  `<relation> <entity> <value> .`; each filler word is shared with probability 1 - `style_strength`, else
  from the family's words with probability `family_style` and the domain's otherwise, so the text reveals
  the family only weakly per word; each value is uniform with probability `random_rate`, else the myth with
  the family's myth rate, else the truth.

Evaluation prompts (`eval_prompts`), never documents: a query `<relation> <entity>` whose answer is the
value token, presented three ways, all unlike any training document's start (documents always open with
filler words, and never hold `cue_words` > `fillers_per_fact` filler words in a row):

* "cued": `cue_words` filler words of a reliable family's style before the query (a textual source cue);
* "bare": the query alone;
* "fewshot": `shots` true facts of other entities, `<relation> <entity> <value> .`, before the query.

`prompt_overlap(prompts, rows)` measures how many prompts occur in the training rows (0 by construction;
a figure reports it as a sanity check).

Tokens: `WordTokenizer` maps whitespace-separated words, single digits, "." and "\\n\\n" to ids (a URL
`wiki17.org` is `wiki 1 7 . org`); its vocabulary is the corpus's words plus the metadata template's
(`URL:`, `Topic:`, `topic`, digits, family words, top-level domains). Unknown words raise.

Cost (one core shared with other jobs, ~3x slower than alone): building the world ~0.2 s; 10k documents
~1.7 s and their tokenization ~0.8 s.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

__all__ = [
    "FamilySpec",
    "DEFAULT_FAMILIES",
    "WebCorpusSpec",
    "WebWorld",
    "Document",
    "Prompt",
    "WordTokenizer",
    "build_world",
    "sample_documents",
    "eval_prompts",
    "prompt_overlap",
]

_TOKEN = re.compile(r"\n\n|[A-Za-z]+:|[A-Za-z]+|[0-9]|\.|\S")
_SYLLABLES = [c + v for c in "bdfghjklmnprstvz" for v in "aeiou"]


@dataclass(frozen=True)
class FamilySpec:
    """One family of sources: `name` (the word in its domains), `tld`, `share` of all documents, `myth_rate`
    (probability that a stated fact is its myth)."""

    name: str
    tld: str
    share: float
    myth_rate: float

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z]+", self.name) or not re.fullmatch(r"[a-z]+", self.tld):
            raise ValueError(f"family name and tld must be lowercase words, got {self.name!r}, {self.tld!r}")
        if not self.share > 0:
            raise ValueError(f"family {self.name!r}: share must be > 0, got {self.share}")
        if not 0.0 <= self.myth_rate <= 1.0:
            raise ValueError(f"family {self.name!r}: myth_rate must lie in [0, 1], got {self.myth_rate}")

    @property
    def reliable(self) -> bool:
        """A family whose myth rate is at most 0.1."""
        return self.myth_rate <= 0.1


DEFAULT_FAMILIES: tuple[FamilySpec, ...] = (
    FamilySpec("wiki", "org", 0.20, 0.0),
    FamilySpec("school", "edu", 0.15, 0.0),
    FamilySpec("news", "com", 0.15, 0.1),
    FamilySpec("forum", "net", 0.20, 0.7),
    FamilySpec("social", "com", 0.15, 0.8),
    FamilySpec("meme", "net", 0.15, 0.9),
)


@dataclass(frozen=True)
class WebCorpusSpec:
    """Everything the world depends on (module docstring); `seed` draws the words, facts and myths."""

    families: tuple[FamilySpec, ...] = DEFAULT_FAMILIES
    n_entities: int = 40
    n_relations: int = 2
    n_values: int = 16
    domains_per_family: int = 16
    zipf_a: float = 1.0
    shared_words: int = 24
    style_words: int = 16
    domain_words: int = 4
    facts_per_doc: tuple[int, int] = (5, 7)
    fillers_per_fact: int = 2
    style_strength: float = 0.9
    family_style: float = 0.7
    random_rate: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.families:
            raise ValueError("families must not be empty")
        names = [f.name for f in self.families]
        if len(set(names)) != len(names):
            raise ValueError(f"family names must be distinct, got {names}")
        for name in ("n_entities", "n_relations", "domains_per_family", "shared_words", "style_words",
                     "domain_words", "fillers_per_fact"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"WebCorpusSpec.{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.n_values, int) or self.n_values < 2:
            raise ValueError(f"WebCorpusSpec.n_values must be an integer >= 2 (a myth needs a second value), "
                             f"got {self.n_values!r}")
        lo, hi = self.facts_per_doc
        if not (isinstance(lo, int) and isinstance(hi, int) and 1 <= lo <= hi):
            raise ValueError(
                f"facts_per_doc must be (low, high) with 1 <= low <= high, got {self.facts_per_doc}"
            )
        if not self.zipf_a >= 0:
            raise ValueError(f"zipf_a must be >= 0, got {self.zipf_a}")
        for name in ("style_strength", "family_style", "random_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"WebCorpusSpec.{name} must lie in [0, 1], got {getattr(self, name)}")


class Document(NamedTuple):
    """One web document: its text, full URL, domain index, family index."""

    text: str
    url: str
    domain: int
    family: int


class Prompt(NamedTuple):
    """An evaluation query: prompt text (without metadata), the fact (entity, relation) it asks, the true
    value's and the myth's words, and the candidate value words (the relation's values)."""

    text: str
    entity: int
    relation: int
    truth: str
    myth: str


@dataclass
class WebWorld:
    """The world a `WebCorpusSpec` describes: words, facts, myths, domains and their sizes."""

    spec: WebCorpusSpec
    entities: list[str]
    relations: list[str]
    values: list[list[str]]  # values[r]: the n_values words of relation r
    truth: np.ndarray  # (n_entities, n_relations) index into values[r]
    myth: np.ndarray  # (n_entities, n_relations), != truth
    shared: list[str]
    family_words: list[list[str]]  # (F, style_words)
    domains: list[str]  # D domain names, "<family><id>.<tld>"
    domain_family: np.ndarray  # (D,) family index
    domain_words: list[list[str]]  # (D, domain_words)
    domain_prob: np.ndarray  # (D,) probability of a document coming from each domain
    extra_vocab: list[str] = field(default_factory=list)

    @property
    def families(self) -> tuple[FamilySpec, ...]:
        return self.spec.families

    def domains_of(self, family: str) -> list[int]:
        """Indices of the family's domains, largest first."""
        f = [fam.name for fam in self.families].index(family)
        idx = [d for d in range(len(self.domains)) if self.domain_family[d] == f]
        return sorted(idx, key=lambda d: -self.domain_prob[d])

    def vocabulary(self) -> list[str]:
        """Every word a document, a prompt or a metadata string of this world can hold."""
        words = [*self.entities, *self.relations, *(v for vs in self.values for v in vs), *self.shared]
        words += [w for ws in self.family_words for w in ws] + [w for ws in self.domain_words for w in ws]
        words += [f.name for f in self.families] + [f.tld for f in self.families]
        words += ["URL:", "Topic:", "topic", ".", "\n\n", *"0123456789", *self.extra_vocab]
        return list(dict.fromkeys(words))


def _words(rng: np.random.Generator, n: int, taken: set[str], syllables: int) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        w = "".join(rng.choice(_SYLLABLES, size=syllables))
        if w not in taken:
            taken.add(w)
            out.append(w)
    return out


def build_world(spec: WebCorpusSpec = WebCorpusSpec()) -> WebWorld:
    """Draw the world of `spec` (words, fact table, myths, domains, Zipf sizes) from `spec.seed`."""
    if not isinstance(spec, WebCorpusSpec):
        raise TypeError(f"spec must be a WebCorpusSpec, got {type(spec).__name__}")
    rng = np.random.default_rng(spec.seed)
    taken = {f.name for f in spec.families} | {f.tld for f in spec.families} | {"topic"}
    entities = _words(rng, spec.n_entities, taken, 3)
    relations = _words(rng, spec.n_relations, taken, 2)
    values = [_words(rng, spec.n_values, taken, 2) for _ in range(spec.n_relations)]
    shared = _words(rng, spec.shared_words, taken, 2)
    family_words = [_words(rng, spec.style_words, taken, 2) for _ in spec.families]
    truth = rng.integers(0, spec.n_values, size=(spec.n_entities, spec.n_relations))
    shift = rng.integers(1, spec.n_values, size=truth.shape)
    myth = (truth + shift) % spec.n_values  # never the truth
    domains, fam_of, dom_words, prob = [], [], [], []
    total = sum(f.share for f in spec.families)
    zipf = 1.0 / np.arange(1, spec.domains_per_family + 1) ** spec.zipf_a
    zipf = zipf / zipf.sum()
    for fi, fam in enumerate(spec.families):
        for k in range(spec.domains_per_family):
            domains.append(f"{fam.name}{k + 1}.{fam.tld}")
            fam_of.append(fi)
            dom_words.append(_words(rng, spec.domain_words, taken, 2))
            prob.append(fam.share / total * zipf[k])
    return WebWorld(spec, entities, relations, values, truth, myth, shared, family_words, domains,
                    np.asarray(fam_of), dom_words, np.asarray(prob))


def sample_documents(world: WebWorld, n: int, seed: int) -> list[Document]:
    """`n` documents, each from a domain drawn by size (Zipf within family x family share), from `seed`.

    URLs carry a scheme and a path (`https://wiki3.org/page/17`), as web crawls do; MeCo keeps the domain.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an integer >= 0, got {n!r}")
    s = world.spec
    rng = np.random.default_rng(seed)
    doms = rng.choice(len(world.domains), size=n, p=world.domain_prob)  # (n,)
    n_facts = rng.integers(s.facts_per_doc[0], s.facts_per_doc[1] + 1, size=n)  # (n,)
    total = int(n_facts.sum())
    doc_of = np.repeat(np.arange(n), n_facts)  # (total,) the document of each fact
    fam = world.domain_family[doms[doc_of]]  # (total,)
    ent = rng.integers(s.n_entities, size=total)
    rel = rng.integers(s.n_relations, size=total)
    myth_rate = np.array([f.myth_rate for f in s.families])[fam]
    val = np.where(rng.random(total) < myth_rate, world.myth[ent, rel], world.truth[ent, rel])
    val = np.where(rng.random(total) < s.random_rate, rng.integers(s.n_values, size=total), val)
    k = s.fillers_per_fact
    u = rng.random((total, k))
    shared = rng.integers(len(world.shared), size=(total, k))
    styled = rng.integers(s.style_words, size=(total, k))
    own = rng.integers(s.domain_words, size=(total, k))
    family_cut = s.style_strength * s.family_style
    sentences = []
    for j in range(total):
        d = int(doms[doc_of[j]])
        words = []
        for i in range(k):
            if u[j, i] >= s.style_strength:
                words.append(world.shared[shared[j, i]])
            elif u[j, i] < family_cut:
                words.append(world.family_words[fam[j]][styled[j, i]])
            else:
                words.append(world.domain_words[d][own[j, i]])
        r = int(rel[j])
        words += [world.relations[r], world.entities[ent[j]], world.values[r][val[j]], "."]
        sentences.append(" ".join(words))
    docs, start = [], 0
    for i in range(n):
        d = int(doms[i])
        text = " ".join(sentences[start:start + int(n_facts[i])])
        start += int(n_facts[i])
        docs.append(Document(text, f"https://{world.domains[d]}/page/{i}", d, int(world.domain_family[d])))
    return docs


def eval_prompts(world: WebWorld, kind: str, seed: int, cue_family: str = "wiki", cue_words: int = 4,
                 shots: int = 3) -> list[Prompt]:
    """One prompt per fact (module docstring): kind "cued", "bare" or "fewshot"."""
    kinds = ("cued", "bare", "fewshot")
    if kind not in kinds:
        raise ValueError(f"kind must be one of {kinds}, got {kind!r}")
    s = world.spec
    if kind == "cued" and cue_words <= s.fillers_per_fact:
        raise ValueError(f"cue_words must exceed fillers_per_fact={s.fillers_per_fact} (so that no training "
                         f"document holds the cue), got {cue_words}")
    if kind == "fewshot" and not 1 <= shots < s.n_entities:
        raise ValueError(f"shots must lie in [1, n_entities), got {shots}")
    names = [f.name for f in s.families]
    if cue_family not in names:
        raise ValueError(f"cue_family must be one of {names}, got {cue_family!r}")
    fam = names.index(cue_family)
    rng = np.random.default_rng(seed)
    out = []
    for e in range(s.n_entities):
        for r in range(s.n_relations):
            query = [world.relations[r], world.entities[e]]
            if kind == "cued":
                head = [world.family_words[fam][i] for i in rng.integers(s.style_words, size=cue_words)]
            elif kind == "fewshot":
                head = []
                others = rng.choice([x for x in range(s.n_entities) if x != e], size=shots, replace=False)
                for o in others:
                    rr = int(rng.integers(s.n_relations))
                    value = world.values[rr][world.truth[o, rr]]
                    head += [world.relations[rr], world.entities[o], value, "."]
            else:
                head = []
            out.append(Prompt(" ".join(head + query), e, r, world.values[r][world.truth[e, r]],
                              world.values[r][world.myth[e, r]]))
    return out


def prompt_overlap(prompts: Sequence[Sequence[int]], rows: Iterable[Sequence[int]]) -> int:
    """How many prompts (token-id sequences) occur as a contiguous span of any row."""
    keys = {tuple(int(t) for t in p) for p in prompts}
    lengths = sorted({len(k) for k in keys})
    found: set[tuple[int, ...]] = set()
    for row in rows:
        row = [int(t) for t in row]
        for n in lengths:
            for i in range(len(row) - n + 1):
                span = tuple(row[i:i + n])
                if span in keys:
                    found.add(span)
    return len(found)


class WordTokenizer:
    """Words, single digits, "." and "\\n\\n" to ids: <pad>=0, <bos>=1, <eos>=2, then `vocabulary` in order.

    `encode(text)` splits on whitespace (and before digits and "."), so `URL: wiki17.org\\n\\n` is
    `URL: wiki 1 7 . org \\n\\n`; an unknown word raises a ValueError naming it.
    """

    def __init__(self, vocabulary: Iterable[str]) -> None:
        words = list(dict.fromkeys(vocabulary))
        if not words:
            raise ValueError("vocabulary must not be empty")
        self.itos = ["<pad>", "<bos>", "<eos>", *words]
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.pad_id, self.bos_id, self.eos_id = 0, 1, 2

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def __len__(self) -> int:
        return len(self.itos)

    def tokens(self, text: str) -> list[str]:
        return _TOKEN.findall(text)

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        out = []
        for tok in _TOKEN.findall(text):
            i = self.stoi.get(tok)
            if i is None or i < 3:
                raise ValueError(f"unknown word {tok!r} in {text[:60]!r}")
            out.append(i)
        return out

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.itos[int(i)] for i in ids if int(i) > 2)


"""common.data: byte tokenizer, cfg3-style PCFG sampler and inside algorithm, shipped real datasets."""

from __future__ import annotations

import itertools
import json
import math
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from common.data import (
    GENSIM_CORPORA,
    PCFG,
    ByteTokenizer,
    ParseTree,
    load_digits_split,
    load_gensim_corpus,
    pad_sequences,
)

# ------------------------------------------------------------------------------------------- tokenizer

TRICKY = [
    "",
    "a",
    "hé",
    "日本語",
    "emoji 🧪🚀 + ZWJ 👩‍🔬",
    "e\u0301 combining",
    "\x00nul\x7f",
    "\r\n\t",
    "<bos> is just text",
    "\U0010ffff",
    "\ufffd",
]


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_round_trip_property(text: str) -> None:
    tok = ByteTokenizer(extra_specials=("<mask>",))
    ids = tok.encode(text)
    assert len(ids) == len(text.encode("utf-8"))
    assert all(0 <= i < 256 for i in ids)
    assert tok.decode(ids) == text
    assert tok.decode(tok.encode(text, add_bos=True, add_eos=True)) == text


@pytest.mark.parametrize("text", TRICKY)
def test_round_trip_examples(text: str) -> None:
    tok = ByteTokenizer()
    assert tok.decode(tok.encode(text, add_bos=True, add_eos=True)) == text


def test_lone_surrogate_is_not_encodable() -> None:
    with pytest.raises(UnicodeEncodeError):
        ByteTokenizer().encode("\ud800")


def test_specials_layout() -> None:
    tok = ByteTokenizer()
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.vocab_size, len(tok)) == (256, 257, 258, 259, 259)
    tok = ByteTokenizer(extra_specials=("<mask>", "<sep>"))
    assert tok.vocab_size == 261
    assert tok.token_id("<mask>") == 259 and tok.token_id("<sep>") == 260
    assert tok.is_special(259) and not tok.is_special(255)
    assert tok.encode("x", add_bos=True, add_eos=True) == [257, 120, 258]
    # Text spelling a special is bytes, never the special.
    assert tok.encode("<mask>") == list(b"<mask>")
    with pytest.raises(KeyError, match="<sep>"):
        ByteTokenizer().token_id("<sep>")
    with pytest.raises(ValueError, match="distinct"):
        ByteTokenizer(extra_specials=("<pad>",))


def test_decode_specials_and_invalid_utf8() -> None:
    tok = ByteTokenizer(extra_specials=("<mask>",))
    assert tok.decode([257, 104, 105, 259, 258], skip_special=False) == "<bos>hi<mask><eos>"
    assert tok.decode([0xFF, 104]) == "\ufffdh"
    assert tok.decode(torch.tensor([195, 169])) == "é"
    # A skipped special does not break a multi-byte character; a rendered one does.
    assert tok.decode([195, 257, 169]) == "é"
    assert tok.decode([195, 257, 169], skip_special=False) == "\ufffd<bos>\ufffd"
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([260])


def test_batch_encode_padding_and_mask() -> None:
    tok = ByteTokenizer()
    texts = ["ab", "", "héllo"]
    ids, mask = tok.batch_encode(texts, add_bos=True)
    assert ids.shape == mask.shape == (3, 7)  # (B, T): "héllo" is 6 bytes + <bos>
    assert ids.dtype == torch.long and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [3, 1, 7]
    assert (ids[~mask] == tok.pad_id).all()
    for b, t in enumerate(texts):
        assert ids[b][mask[b]].tolist() == tok.encode(t, add_bos=True)
    assert tok.batch_decode(ids, mask) == texts

    ids, mask = tok.batch_encode(texts, pad_to=10)
    assert ids.shape == (3, 10) and mask.sum(1).tolist() == [2, 0, 6]
    ids, mask = tok.batch_encode(texts, max_len=3, pad_to=4)
    assert ids.shape == (3, 4) and mask.sum(1).tolist() == [2, 0, 3]
    assert ids[2, :3].tolist() == list("héllo".encode())[:3]
    with pytest.raises(ValueError, match="pad_to"):
        tok.batch_encode(texts, pad_to=3)
    with pytest.raises(TypeError):
        tok.batch_encode("ab")
    ids, mask = tok.batch_encode([], pad_to=5)
    assert ids.shape == mask.shape == (0, 5)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(max_size=20), max_size=6))
def test_batch_round_trip_property(texts: list[str]) -> None:
    tok = ByteTokenizer()
    ids, mask = tok.batch_encode(texts, add_bos=True, add_eos=True)
    assert tok.batch_decode(ids, mask) == texts
    assert tok.batch_decode(ids) == texts  # pads are specials, skipped by default


def test_pad_sequences_for_pcfg_ids() -> None:
    ids, mask = pad_sequences([[0, 1, 2], [2]], pad_id=5)
    assert ids.tolist() == [[0, 1, 2], [2, 5, 5]]
    assert mask.tolist() == [[True, True, True], [True, False, False]]


# ------------------------------------------------------------------------------------------------ PCFG


def check_tree(g: PCFG, sentence: list[int], tree: ParseTree) -> None:
    """A tree is consistent with its sentence: every level partitions it, each span's children are the
    consecutive spans below matching its rule, and the last level's rules spell the tokens."""
    n = len(sentence)
    assert tree.length == n and len(tree.levels) == g.num_levels
    assert len(tree.levels[0]) == 1 and tree.levels[0][0][:3] == (0, 0, n)
    for lvl, spans in enumerate(tree.levels):
        assert spans[0].start == 0 and spans[-1].end == n
        assert all(a.end == b.start for a, b in itertools.pairwise(spans))
        assert all(s.end > s.start for s in spans)
        child = 0
        for s in spans:
            rhs = g.rules[lvl][s.symbol][s.rule].rhs
            if lvl == g.num_levels - 1:
                assert sentence[s.start : s.end] == list(rhs)
            else:
                kids = tree.levels[lvl + 1][child : child + len(rhs)]
                assert tuple(k.symbol for k in kids) == rhs
                assert kids[0].start == s.start and kids[-1].end == s.end
                child += len(rhs)
        if lvl < g.num_levels - 1:
            assert child == len(tree.levels[lvl + 1])
    anc = tree.ancestor_matrix()
    assert anc.shape == (g.num_levels, n)
    for lvl, spans in enumerate(tree.levels):
        assert tree.boundaries(lvl) == [s.end for s in spans]
        for s in spans:
            assert (anc[lvl, s.start : s.end] == s.symbol).all()


@pytest.fixture(scope="module")
def toy() -> PCFG:
    return PCFG.cfg3_toy(seed=0)


def test_grammar_is_deterministic_and_golden(toy: PCFG) -> None:
    assert PCFG.cfg3_toy(seed=0) == toy
    assert PCFG.cfg3_toy(seed=1) != toy
    # Pinned so that a change in the generator (or in numpy's PCG64 stream) cannot go unnoticed:
    # the figures' grammar would silently change with it.
    assert toy.expected_length() == 43.4375
    assert toy.length_range() == (25, 66)
    assert toy.sample(1, seed=0)[0][:12] == [0, 1, 2, 2, 1, 0, 1, 2, 2, 1, 2, 2]
    shape = [[len(symbols) for symbols in toy.rules], [len(p) for symbols in toy.rules for p in symbols]]
    assert shape == [[1, 3, 3, 3], [2] * 10]
    assert all(len(r.rhs) in (2, 3) and r.prob == 0.5 for lvl in toy.rules for p in lvl for r in p)


def test_sampling_is_deterministic(toy: PCFG) -> None:
    a = toy.sample(50, seed=7)
    assert a == toy.sample(50, seed=7)
    assert a[:20] == toy.sample(20, seed=7)  # sentence i does not depend on n
    assert a != toy.sample(50, seed=8)
    assert [s for s, _ in toy.sample_with_trees(50, seed=7)] == a


def test_sentence_lengths(toy: PCFG) -> None:
    lengths = np.array([len(s) for s in toy.sample(2000, seed=0)])
    lo, hi = toy.length_range()
    assert 16 <= lo and hi <= 81  # 2**levels .. 3**levels for rule lengths 2-3
    assert lengths.min() >= lo and lengths.max() <= hi
    se = lengths.std() / math.sqrt(len(lengths))
    print(
        f"cfg3_toy(0) sentence length: mean {lengths.mean():.2f} (exact {toy.expected_length():.4f}), "
        f"sd {lengths.std():.2f}, range {lengths.min()}..{lengths.max()}"
    )
    assert abs(lengths.mean() - toy.expected_length()) < 4 * se
    assert 35 <= lengths.mean() <= 55  # "about 50 tokens" for the CPU toy


def test_trees_are_consistent(toy: PCFG) -> None:
    for sentence, tree in toy.sample_with_trees(200, seed=3):
        check_tree(toy, sentence, tree)
    g = PCFG.random(
        levels=3, symbols_per_level=[2, 4], rules_per_symbol=3, rule_lengths=(1, 2, 3), terminals=4, seed=11
    )
    for sentence, tree in g.sample_with_trees(200, seed=0):
        check_tree(g, sentence, tree)


def test_inside_positive_for_samples_and_zero_for_random_strings(toy: PCFG) -> None:
    samples = toy.sample_with_trees(60, seed=5)
    for sentence, tree in samples:
        lp = toy.inside_log_prob(sentence)
        assert math.isfinite(lp)
        assert lp >= toy.tree_log_prob(tree) - 1e-9  # one derivation never beats the sum over all
    rng = np.random.default_rng(0)
    random_strings = [rng.integers(3, size=len(s)).tolist() for s, _ in samples]
    zero = np.mean([toy.inside_log_prob(s) == -math.inf for s in random_strings])
    assert zero >= 0.9, f"only {zero:.0%} of random strings have probability zero"
    assert toy.inside_log_prob([]) == -math.inf
    with pytest.raises(ValueError, match="terminals"):
        toy.inside_log_prob([0, 3])


# An ambiguous two-level grammar over {0, 1}: "0 1" comes from S -> B and from S -> A B.
TINY = {
    "num_terminals": 2,
    "levels": [
        [[{"rhs": [0, 0], "prob": 0.5}, {"rhs": [1], "prob": 0.3}, {"rhs": [0, 1], "prob": 0.2}]],
        [
            [{"rhs": [0], "prob": 0.7}, {"rhs": [0, 1], "prob": 0.3}],  # A
            [{"rhs": [0, 1], "prob": 0.6}, {"rhs": [1], "prob": 0.4}],  # B
        ],
    ],
}


def test_inside_matches_hand_computation_and_normalizes() -> None:
    g = PCFG.from_dict(TINY)
    # P(0 1) = P(S->B) P(B->0 1) + P(S->A B) P(A->0) P(B->1)
    assert g.inside_log_prob([0, 1]) == pytest.approx(math.log(0.3 * 0.6 + 0.2 * 0.7 * 0.4), abs=1e-12)
    lo, hi = g.length_range()
    total = sum(
        math.exp(g.inside_log_prob(list(s)))
        for n in range(lo, hi + 1)
        for s in itertools.product(range(2), repeat=n)
    )
    assert total == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("grammar", ["tiny", "random"])
def test_empirical_frequencies_match_inside(grammar: str) -> None:
    g = (
        PCFG.from_dict(TINY)
        if grammar == "tiny"
        else PCFG.random(
            levels=2, symbols_per_level=2, rules_per_symbol=2, rule_lengths=(1, 2), terminals=2, seed=4
        )
    )
    n = 20_000
    counts: dict[tuple[int, ...], int] = {}
    for s in g.sample(n, seed=0):
        counts[tuple(s)] = counts.get(tuple(s), 0) + 1
    lo, hi = g.length_range()
    support = [s for k in range(lo, hi + 1) for s in itertools.product(range(2), repeat=k)]
    probs = {s: math.exp(g.inside_log_prob(list(s))) for s in support}
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-12)
    assert set(counts) <= {s for s, p in probs.items() if p > 0}
    for s, p in probs.items():
        freq = counts.get(s, 0) / n
        # Binomial standard error; 5 sigma over ~30 strings keeps false alarms below 1e-4.
        assert abs(freq - p) <= 5 * math.sqrt(p * (1 - p) / n) + 1e-12, (s, freq, p)


def test_dict_round_trip_and_validation(toy: PCFG) -> None:
    d = json.loads(json.dumps(toy.to_dict()))
    assert PCFG.from_dict(d) == toy
    assert PCFG.from_dict(d).meta == toy.meta
    assert "S -> N1_" in toy.describe()
    assert toy.special_ids() == {"bos": 3, "eos": 4, "pad": 5, "mask": 6} and toy.vocab_size == 7

    bad = json.loads(json.dumps(TINY))
    bad["levels"][1][0][0]["prob"] = 0.6
    with pytest.raises(ValueError, match="sum to"):
        PCFG.from_dict(bad)
    bad = json.loads(json.dumps(TINY))
    bad["levels"][0][0][0]["rhs"] = [0, 2]
    with pytest.raises(ValueError, match="leaves"):
        PCFG.from_dict(bad)
    bad = json.loads(json.dumps(TINY))
    bad["levels"][0].append(bad["levels"][0][0])
    with pytest.raises(ValueError, match="start symbol"):
        PCFG.from_dict(bad)
    with pytest.raises(ValueError, match="format"):
        PCFG.from_dict({**TINY, "format": "other/9"})


def test_random_grammar_shapes() -> None:
    g = PCFG.random(levels=6, symbols_per_level=3, rules_per_symbol=2, terminals=3, seed=0)
    assert [len(s) for s in g.rules] == [1, 3, 3, 3, 3, 3]
    lo, hi = g.length_range()
    assert 2**6 <= lo and hi <= 3**6
    for lvl, symbols in enumerate(g.rules):  # every symbol below is reachable
        used = {c for p in symbols for r in p for c in r.rhs}
        assert used == set(range(g.level_size(lvl + 1)))
        for p in symbols:  # distinct right-hand sides per symbol
            assert len({r.rhs for r in p}) == len(p)
    with pytest.raises(ValueError, match="symbols_per_level"):
        PCFG.random(levels=3, symbols_per_level=[3], rules_per_symbol=2, seed=0)


# ------------------------------------------------------------------------------------------- real data


def test_digits_split() -> None:
    x_tr, y_tr, x_te, y_te = load_digits_split(test_fraction=0.25, seed=0)
    assert x_tr.shape == (1347, 64) and y_tr.shape == (1347,)
    assert x_te.shape == (450, 64) and y_te.shape == (450,)
    assert x_tr.dtype == torch.float32 and y_tr.dtype == torch.int64
    # Stratified: every class's test share is within one image of 25%.
    counts_all = torch.bincount(torch.cat([y_tr, y_te]), minlength=10)
    counts_te = torch.bincount(y_te, minlength=10)
    assert counts_all.sum() == 1797
    assert ((counts_te - 0.25 * counts_all).abs() <= 1).all()

    again = load_digits_split(test_fraction=0.25, seed=0)
    assert all(torch.equal(a, b) for a, b in zip((x_tr, y_tr, x_te, y_te), again, strict=True))
    other = load_digits_split(test_fraction=0.25, seed=1)
    assert not torch.equal(y_te, other[3])

    # Standardized with train statistics: train columns have mean 0 and sd 1 (or are constant 0).
    raw_tr, _, raw_te, _ = load_digits_split(seed=0, standardize=False)
    assert raw_tr.min() >= 0 and raw_tr.max() <= 16
    mean, std = raw_tr.double().mean(0), raw_tr.double().std(0, unbiased=False)
    varying = std > 0
    assert x_tr.double().mean(0).abs().max() < 1e-5
    train_sd = x_tr.double().std(0, unbiased=False)[varying]
    assert torch.allclose(train_sd, torch.ones_like(train_sd), atol=1e-5)
    assert (x_tr[:, ~varying] == 0).all()
    expected_te = (raw_te.double() - mean) / torch.where(varying, std, torch.ones_like(std))
    assert torch.allclose(x_te.double(), expected_te, atol=1e-5)

    with pytest.raises(ValueError, match="test_fraction"):
        load_digits_split(test_fraction=1.0)


@pytest.mark.parametrize(
    ("name", "docs", "tokens", "first"),
    [("lee_background", 300, 58_152, ["hundreds", "of", "people"]), ("head500", 250, 331_339, ["anarch"])],
)
def test_gensim_corpora(name: str, docs: int, tokens: int, first: list[str]) -> None:
    corpus = load_gensim_corpus(name)
    assert len(corpus) == docs
    assert sum(len(d) for d in corpus) == tokens
    assert all(
        d and all(isinstance(t, str) and t and not any(c.isspace() for c in t) for t in d) for d in corpus
    )
    assert corpus[0][: len(first)] == first
    assert all(t == t.lower() for d in corpus for t in d)


def test_unknown_corpus_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="lee_background") as err:
        load_gensim_corpus("wikitext")
    assert all(name in str(err.value) for name in GENSIM_CORPORA)


def _hide(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    for mod in [m for m in sys.modules if m == package or m.startswith(package + ".")] + [package]:
        monkeypatch.setitem(sys.modules, mod, None)


def test_missing_packages_raise_clear_import_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, "sklearn")
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        load_digits_split()
    _hide(monkeypatch, "gensim")
    with pytest.raises(ImportError, match="pip install gensim"):
        load_gensim_corpus("head500")

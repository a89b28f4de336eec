"""MeCo (Gao et al., ICML 2025): the packer `papers.meco.pack` (exact template, loss mask on exactly the
metadata tokens, no cut between a document and its metadata, metadata=None is plain packing bit for bit,
bad inputs), the synthetic web corpus, the token-budget plan and the cooldown switch, and the configs.
The figures at quick scale run in tests/test_quick_claims.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.configs import ConfigError, Scale
from common.data.tokenizer import ByteTokenizer
from common.data.web_corpus import (
    FamilySpec,
    WebCorpusSpec,
    WordTokenizer,
    build_world,
    eval_prompts,
    prompt_overlap,
    sample_documents,
)
from papers.meco import PAPER, labels, pack
from papers.meco import runs as R
from papers.meco.packing import hashed_domain, metadata_string, short_url, url_suffix

TOK = ByteTokenizer()
DOCS = ["the cat sat on the mat", "a b", "lorem ipsum dolor sit amet consectetur", "x", "hello world again"]
URLS = ["https://en.wikipedia.org/wiki/Cat", "http://boards.4chan.org/b/", "www.factmonster.com",
        "https://a.b.co.uk/x/y", "https://en.wikipedia.org/"]


# --------------------------------------------------------------------------------------------------------
# The template and its pieces
# --------------------------------------------------------------------------------------------------------
def test_short_url_suffix_hash_and_template():
    assert short_url("https://en.wikipedia.org/wiki/Bill_Gates") == "en.wikipedia.org"
    assert short_url("http://boards.4chan.org/b/") == "boards.4chan.org"
    assert short_url("www.factmonster.com") == "www.factmonster.com"
    assert url_suffix("en.wikipedia.org") == "org"
    h = hashed_domain("en.wikipedia.org")
    assert h == hashed_domain("en.wikipedia.org") and h != hashed_domain("boards.4chan.org") and len(h) == 6
    assert metadata_string(URLS[0], "url") == "URL: en.wikipedia.org\n\n"
    assert metadata_string(URLS[0], "suffix") == "URL: org\n\n"
    assert metadata_string(URLS[0], "hashed") == f"URL: {h}\n\n"
    assert metadata_string(None, "topic", "cats") == "Topic: cats\n\n"
    assert metadata_string(URLS[0], None) == ""


def test_exact_token_layout_of_one_unit():
    p = pack(DOCS[:1], URLS[:1], TOK, 64, "url", strategy="pad")
    expected = [TOK.bos_id, *TOK.encode("URL: en.wikipedia.org\n\n"), *TOK.encode(DOCS[0]), TOK.eos_id]
    n = len(expected)
    assert p.ids[0, :n].tolist() == expected and (p.ids[0, n:] == TOK.pad_id).all()
    head = 1 + len(TOK.encode("URL: en.wikipedia.org\n\n"))
    assert p.loss_mask[0, :head].sum() == 0 and p.loss_mask[0, head:n].all() and not p.loss_mask[0, n:].any()
    lab = labels(p)
    # the first document token is a target, predicted from the last metadata position ("\n")
    assert lab[0, head - 1] == TOK.encode(DOCS[0])[0]
    assert (lab[0, : head - 1] == -100).all() and lab[0, n - 2] == TOK.eos_id
    assert (lab[0, n - 1:] == -100).all()
    assert p.n_metadata_tokens == head - 1 and p.n_tokens == n


def _segments(p):
    """(row, start, end, document) of every document segment."""
    out = []
    for r in range(p.ids.shape[0]):
        d = p.document[r].tolist()
        t = 0
        while t < len(d):
            if d[t] < 0:
                t += 1
                continue
            s = t
            while t < len(d) and d[t] == d[s]:
                t += 1
            out.append((r, s, t, d[s]))
    return out


@pytest.mark.parametrize("metadata", ["url", "hashed", "suffix", "topic", None])
@pytest.mark.parametrize("strategy", ["pack_complete", "pad"])
@pytest.mark.parametrize("seq_len", [31, 40, 97])
def test_mask_covers_exactly_the_metadata_and_no_cut_at_the_boundary(metadata, strategy, seq_len):
    topics = [f"t{i}" for i in range(len(DOCS))]
    p = pack(DOCS, URLS, TOK, seq_len, metadata, topics=topics, strategy=strategy)
    seen_meta = 0
    for r, s, e, i in _segments(p):
        meta = TOK.encode(metadata_string(URLS[i], metadata, topics[i]))
        body = TOK.encode(DOCS[i])
        unit = [TOK.bos_id, *meta, *body, TOK.eos_id]
        head = 1 + len(meta)
        assert e - s >= head + 1, "a row boundary fell inside BOS + metadata + first document token"
        assert p.ids[r, s:e].tolist() == unit[: e - s]  # a prefix of its unit: starts at BOS
        m = p.loss_mask[r, s:e].tolist()
        assert m == [False] * head + [True] * (e - s - head)  # masked exactly on BOS + metadata
        seen_meta += len(meta)
    assert seen_meta == p.n_metadata_tokens
    assert not p.loss_mask[p.document < 0].any()
    assert p.n_tokens == int((p.document >= 0).sum())
    if strategy == "pack_complete":  # every row starts at a document
        assert (p.document[:, 0] >= 0).all() and (p.ids[:, 0] == TOK.bos_id).all()


def _plain_reference(docs, tok, seq_len):
    """Plain packing written out independently: BOS + doc + EOS end to end, a full row cuts the unit that
    overflows (rest discarded), and a unit whose BOS + first token would not fit starts the next row."""
    rows, masks, row, mask = [], [], [], []
    for d in docs:
        unit = [tok.bos_id] + tok.encode(d) + [tok.eos_id]
        if seq_len - len(row) < 2:
            rows.append(row + [tok.pad_id] * (seq_len - len(row)))
            masks.append(mask + [False] * (seq_len - len(mask)))
            row, mask = [], []
        room = seq_len - len(row)
        row += unit[:room]
        mask += ([False] + [True] * (len(unit) - 1))[:room]
        if len(row) == seq_len:
            rows.append(row)
            masks.append(mask)
            row, mask = [], []
    if row:
        rows.append(row + [tok.pad_id] * (seq_len - len(row)))
        masks.append(mask + [False] * (seq_len - len(mask)))
    return torch.tensor(rows), torch.tensor(masks)


@pytest.mark.parametrize("seq_len", [3, 8, 23, 24, 1000])
def test_metadata_none_is_plain_packing_bit_for_bit(seq_len):
    docs = DOCS * 3
    p = pack(docs, None, TOK, seq_len, None)
    ids, mask = _plain_reference(docs, TOK, seq_len)
    assert torch.equal(p.ids, ids) and torch.equal(p.loss_mask, mask) and p.n_metadata_tokens == 0


def test_pack_works_with_the_word_tokenizer_of_the_corpus():
    world = build_world(WebCorpusSpec(seed=3))
    tok = WordTokenizer(world.vocabulary())
    docs = sample_documents(world, 4, 0)
    p = pack([d.text for d in docs], [d.url for d in docs], tok, 80, "url", strategy="pad")
    dom = short_url(docs[0].url)
    assert tok.decode(p.ids[0, 1:8].tolist()).startswith("URL: " + " ".join(tok.tokens(dom)))


def test_pack_rejects_bad_input():
    with pytest.raises(ValueError, match="documents must not be empty"):
        pack([], [], TOK, 10)
    with pytest.raises(TypeError, match="sequence of strings"):
        pack("abc", None, TOK, 10, None)
    with pytest.raises(ValueError, match="document 1 is ''"):
        pack(["a", ""], ["x.org", "y.org"], TOK, 10)
    with pytest.raises(ValueError, match="metadata must be one of"):
        pack(DOCS, URLS, TOK, 64, "title")
    with pytest.raises(ValueError, match="needs one url per document"):
        pack(DOCS, URLS[:2], TOK, 64, "url")
    with pytest.raises(ValueError, match="needs one topic per document"):
        pack(DOCS, URLS, TOK, 64, "topic")
    with pytest.raises(ValueError, match="seq_len must be an integer >= 3"):
        pack(DOCS, URLS, TOK, 2, None)
    with pytest.raises(ValueError, match="cannot hold BOS"):
        pack(DOCS, URLS, TOK, 12, "url")
    with pytest.raises(ValueError, match="strategy must be one of"):
        pack(DOCS, URLS, TOK, 64, "url", strategy="bfd")
    with pytest.raises(TypeError, match="encode"):
        pack(DOCS, URLS, object(), 64, "url")
    with pytest.raises(ValueError, match="no bos_id"):
        pack(DOCS, URLS, type("T", (), {"encode": lambda self, s: [1]})(), 64, "url")
    with pytest.raises(ValueError, match="has no domain"):
        pack(["a"], ["https:///x"], TOK, 64, "url")


# --------------------------------------------------------------------------------------------------------
# The synthetic web corpus
# --------------------------------------------------------------------------------------------------------
def test_world_facts_myths_zipf_and_tokenizer():
    world = build_world(WebCorpusSpec(seed=1))
    assert (world.myth != world.truth).all()
    wiki = world.domains_of("wiki")
    assert len(wiki) == 16 and np.all(np.diff(world.domain_prob[wiki]) <= 0)
    assert world.domain_prob.sum() == pytest.approx(1.0)
    tok = WordTokenizer(world.vocabulary())
    docs = sample_documents(world, 50, 7)
    assert docs == sample_documents(world, 50, 7)  # deterministic
    for d in docs[:5]:
        assert tok.decode(tok.encode(d.text)) == " ".join(tok.tokens(d.text))
    with pytest.raises(ValueError, match="unknown word 'zzzq'"):
        tok.encode("zzzq")


def test_reliable_families_state_truth_and_unreliable_ones_repeat_myths():
    world = build_world(WebCorpusSpec(seed=2))
    docs = sample_documents(world, 3000, 0)
    ent = {e: i for i, e in enumerate(world.entities)}
    rel = {r: i for i, r in enumerate(world.relations)}
    rates = {}
    for fam in ("wiki", "meme"):
        f = [x.name for x in world.families].index(fam)
        myth = n = 0
        for d in docs:
            if d.family != f:
                continue
            w = d.text.split()
            for i in range(len(w) - 2):
                if w[i] in rel and w[i + 1] in ent:
                    r, e = rel[w[i]], ent[w[i + 1]]
                    myth += w[i + 2] == world.values[r][world.myth[e, r]]
                    n += 1
        rates[fam] = myth / n
    assert rates["wiki"] < 0.02 and rates["meme"] > 0.75


def test_eval_prompts_are_disjoint_from_training_rows():
    world = build_world(WebCorpusSpec(seed=0))
    tok = WordTokenizer(world.vocabulary())
    docs = sample_documents(world, 300, 0)
    rows = pack([d.text for d in docs], [d.url for d in docs], tok, 80, "url", strategy="pad").ids.tolist()
    for kind in ("cued", "bare", "fewshot"):
        prompts = eval_prompts(world, kind, 0)
        assert len(prompts) == 80
        enc = [[tok.bos_id, *tok.encode(p.text)] for p in prompts]
        assert prompt_overlap(enc, rows) == 0
    # negative control: the measure finds a prompt that is in the rows
    assert prompt_overlap([rows[0][:5]], rows) == 1


def test_corpus_rejects_bad_specs():
    with pytest.raises(ValueError, match="n_values must be an integer >= 2"):
        WebCorpusSpec(n_values=1)
    with pytest.raises(ValueError, match="facts_per_doc"):
        WebCorpusSpec(facts_per_doc=(3, 2))
    with pytest.raises(ValueError, match="myth_rate must lie in"):
        FamilySpec("wiki", "org", 0.2, 1.5)
    with pytest.raises(ValueError, match="family names must be distinct"):
        WebCorpusSpec(families=(FamilySpec("a", "org", 1, 0), FamilySpec("a", "com", 1, 0)))
    with pytest.raises(ValueError, match="cue_words must exceed"):
        eval_prompts(build_world(), "cued", 0, cue_words=2)
    with pytest.raises(ValueError, match="kind must be one of"):
        eval_prompts(build_world(), "zero", 0)
    with pytest.raises(ValueError, match="n must be an integer"):
        sample_documents(build_world(), -1, 0)


# --------------------------------------------------------------------------------------------------------
# Token budget, cooldown switch, configs
# --------------------------------------------------------------------------------------------------------
def test_equal_token_budget_and_cooldown_switch():
    cfg = R.RunConfig(tokens=20_000, batch=8)
    tok = R.world_and_tokenizer(WebCorpusSpec(seed=0))[1]
    totals = {}
    for arm in ("standard", "meco", "no_cooldown", "hashed", "suffix", "topic"):
        url_id = tok.stoi["Topic:" if arm == "topic" else "URL:"]
        data = R.run_spec(arm, 0, cfg).pretrain.data
        (s1, s2), _, _ = R.plan(data)
        get_batch, cum, _ = R.build_batches(data)
        totals[arm] = cum[-1]
        has_url = [bool((get_batch(s, 0)[0] == url_id).any()) for s in range(s1 + s2)]
        assert has_url == [True] * s1 + [False] * s2
        ids, lab = get_batch(0, 0)
        assert not (lab == url_id).any()  # metadata tokens are never targets
        if arm in ("meco", "hashed", "suffix", "topic"):
            assert s2 > 0 and 0.07 < (cum[-1] - cum[s1 - 1]) / cum[-1] < 0.13  # ~10% of tokens in cooldown
        if arm == "no_cooldown":
            assert s2 == 0
        if arm == "standard":
            assert s1 == 0
    assert max(abs(totals[a] / totals["standard"] - 1) for a in totals) < 0.02


def test_configs_reject_bad_values():
    fig = PAPER.figure("fig_acceleration")
    with pytest.raises(ConfigError, match="n_seeds"):
        fig.config_for(Scale.QUICK, overrides=["n_seeds=0"])
    with pytest.raises(ConfigError, match="unknown config key"):
        fig.config_for(Scale.QUICK, overrides=["budget=3"])
    with pytest.raises(ConfigError):
        PAPER.figure("fig_ablation").config_for(Scale.QUICK, overrides=["arms=hashed,title"])
    with pytest.raises(ValueError, match="arm must be one of"):
        R.run_spec("title", 0, R.RunConfig())


# --------------------------------------------------------------------------------------------------------
# Claims on hand-made runs: they can come out either way
# --------------------------------------------------------------------------------------------------------
def _fake_run(traj, tokens=100.0):
    last = traj[-1]
    return {"trajectory": traj, "tokens": tokens, "final": dict(zip(R.EVALS, last[1:], strict=True)),
            "heldout_loss": {"all": 2.0}, "overlap": {"cued": 0}, "n_documents": 10,
            "steer": {p: {"truth": 0.5, "myth": 0.2} for p in R.STEER}}


def test_tokens_to_reach_interpolates_and_the_claim_goes_both_ways():
    from papers.meco import fig_acceleration as A

    traj = [[20.0, 0.2, 0.2, 0.2], [40.0, 0.4, 0.4, 0.4], [60.0, 0.8, 0.8, 0.8]]
    assert A.tokens_to_reach(traj, 0.6, 100.0) == pytest.approx(0.5)
    assert A.tokens_to_reach(traj, 0.9, 100.0) == A.NOT_REACHED
    std = _fake_run([[50.0, 0.3, 0.3, 0.3], [100.0, 0.5, 0.5, 0.5]])
    fast = _fake_run([[50.0, 0.6, 0.6, 0.6], [100.0, 0.7, 0.7, 0.7]])
    slow = _fake_run([[50.0, 0.2, 0.2, 0.2], [100.0, 0.4, 0.4, 0.4]])
    cfg = A.CONFIGS[Scale.QUICK]
    for meco, passes in ((fast, True), (slow, False)):
        data = {"seeds": [0, 1], "runs": {"standard": [std, std], "meco": [meco, meco]}}
        claims = {c.id: c for c in A.claims(data, cfg)}
        assert claims["meco.accel.tokens_to_match"].passed is passes
        assert claims["meco.accel.final_gain"].passed is passes
    # Standard that never learned the facts: nothing to match, the claim fails
    flat = _fake_run([[50.0, 0.1, 0.1, 0.1], [100.0, 0.12, 0.12, 0.12]])
    data = {"seeds": [0], "runs": {"standard": [flat], "meco": [fast]}}
    assert not {c.id: c for c in A.claims(data, cfg)}["meco.accel.tokens_to_match"].passed


def test_cooldown_branches_follow_the_papers_protocol(tmp_path):
    from common.experiment import RunContext

    cfg = R.RunConfig(tokens=5_000, batch=4, eval_every=10, heldout_docs=8)
    ctx = RunContext(out_dir=tmp_path, show_progress=False)
    main = R.run_arm("meco", 0, cfg, ctx)
    traj = R.branch_trajectory("meco", 0, cfg, 2, ctx)
    (s1, s2), _, _ = R.plan(R.run_spec("meco", 0, cfg).pretrain.data)
    assert len(traj) == 3 and traj[-1][0] == main["tokens"]
    tokens = [p[0] for p in traj]
    assert tokens == sorted(tokens) and tokens[0] > main["tokens"] * 0.1  # each point includes a cooldown
    assert traj == R.branch_trajectory("meco", 0, cfg, 2, ctx)  # from the shared cache
    with pytest.raises(ValueError, match="no cooldown to branch"):
        R.branch_trajectory("no_cooldown", 0, cfg, 2, ctx)

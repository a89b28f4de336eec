"""MUSE (papers/muse): metrics against hand-computed cases, the PrivLeak sign convention, the stopping rule,
the corpus splits, the methods' losses at their fixed points, and input errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from common.configs import ConfigError
from common.data.biographies import make_biographies
from common.models.gpt import GPT, GPTConfig
from papers.muse import METHODS, CorpusSpec, build_corpus, evaluate, select_checkpoint, unlearn
from papers.muse.methods import WHPModel, doc_rows, kl_loss, npo_loss, task_vector
from papers.muse.metrics import cut_answer, min_k_score, privleak, privleak_auc, rouge_l_f1
from papers.muse.pipeline import overlaps

TINY = CorpusSpec(n_forget=3, n_folds=2, n_retain1=4, n_retain2=3, n_holdout=3, bios_per_entity=2)


@pytest.fixture(scope="module")
def corpus():
    return build_corpus(TINY)


@pytest.fixture(scope="module")
def tiny_gpt(corpus):
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=corpus.vocab_size, block_size=128, n_layer=1, n_head=2, n_embd=16)).eval()


# ------------------------------------------------------------------------------------------------ ROUGE
def test_rouge_l_hand_computed():
    # LCS("a b c d", "a c x") = "a c" = 2: P = 2/3, R = 2/4, F = 2PR / (P + R) = 4/7
    assert rouge_l_f1("a b c d", "a c x") == pytest.approx(4 / 7)
    assert rouge_l_f1("paris", "paris") == 1.0
    assert rouge_l_f1("Paris.", "paris") == 1.0  # lowercased, punctuation dropped (rouge-score's tokenizer)
    assert rouge_l_f1("paris", "") == 0.0
    assert rouge_l_f1("paris", "lima") == 0.0


def test_cut_answer_stops_at_question_or_eos():
    assert cut_answer("paris question : where") == "paris"
    assert cut_answer("paris <eos> lima") == "paris"
    assert cut_answer("paris lima") == "paris lima"


# ------------------------------------------------------------------------------------------ Min-K%, AUC
def test_min_k_score_hand_computed():
    lp = [-1.0, -2.0, -3.0, -4.0, -5.0]
    assert min_k_score(lp, 0.4) == pytest.approx(4.5)  # int(0.4 * 5) = 2 lowest: -5, -4 -> 4.5
    assert min_k_score(lp, 0.1) == pytest.approx(5.0)  # int(0.5) = 0 -> at least one (MUSE's code: NaN)
    assert min_k_score(lp, 1.0) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="at least one"):
        min_k_score([], 0.4)
    with pytest.raises(ValueError, match="k must"):
        min_k_score(lp, 0.0)


def test_privleak_sign_convention():
    memorized_forget, holdout = [1.0, 1.2, 0.9], [5.0, 4.0, 6.0]  # forget far more likely (small Min-K)
    auc = privleak_auc(memorized_forget, holdout)
    assert auc == 0.0  # forget labelled 0, holdout 1, score -Min-K: no holdout text looks more likely
    assert privleak(auc, 0.5) == pytest.approx(-100.0)  # under-unlearning: negative, as MUSE's target
    assert privleak(0.5, 0.5) == 0.0  # the retrained model is 0 by definition
    # swapping the roles (forget now *less* likely than holdout: over-unlearning) flips the sign
    assert privleak(privleak_auc(holdout, memorized_forget), 0.5) == pytest.approx(100.0)
    assert privleak_auc([1.0, 2.0], [1.5]) == pytest.approx(0.5)  # one of two forget texts is less likely
    with pytest.raises(ValueError, match="auc_retrain"):
        privleak(0.3, 0.0)
    with pytest.raises(ValueError, match="at least one"):
        privleak_auc([], [1.0])


# ------------------------------------------------------------------------------------------ stopping rule
def test_select_checkpoint_first_at_or_below_reference():
    assert select_checkpoint([50, 30, 10, 5], 10) == (2, True)  # first epoch <= retrain's KnowMem_f
    assert select_checkpoint([50, 30, 10, 5], 60) == (0, True)
    assert select_checkpoint([50, 30, 10, 5], 1) == (3, False)  # never met: the last epoch
    assert select_checkpoint([50, 30], None) == (1, False)
    with pytest.raises(ValueError, match="at least one"):
        select_checkpoint([], 1.0)


# ------------------------------------------------------------------------------------------------- corpus
def test_corpus_splits_disjoint_and_names_shared(corpus):
    assert all(v == 0 for v in overlaps(corpus).values()), overlaps(corpus)
    assert len(corpus.forget_set(2)) == 6 and corpus.forget_set(2, nested=False) == corpus.folds[1]
    q = corpus.knowmem_set(corpus.forget)
    assert len(q) == 6 * len(corpus.forget) and all(p.endswith("answer :") for p, _ in q)
    prompt, rest = corpus.verbmem_set(corpus.forget)[0]
    assert prompt.count(" .") == 2 and rest.count(" .") == 4
    assert corpus.decode(corpus.encode(prompt)) == prompt


def test_corpus_errors():
    with pytest.raises(ConfigError, match="icl"):
        CorpusSpec(n_retain1=2, icl=3)
    with pytest.raises(ValueError, match="n_entities"):
        make_biographies(0)
    with pytest.raises(ValueError, match="not in the corpus vocabulary"):
        build_corpus(TINY).encode("zebra")
    with pytest.raises(TypeError, match="CorpusSpec"):
        build_corpus({"n_forget": 3})
    with pytest.raises(ValueError, match="k must"):
        build_corpus(TINY).forget_set(3)


# ------------------------------------------------------------------------------------- losses, TV, WHP
def test_losses_at_the_reference(corpus, tiny_gpt):
    ids, labels = doc_rows([corpus.encode(t) for t in corpus.bios(corpus.forget)])
    for variant in ("paper", "official"):
        # model == reference: log-ratio 0, -(2/beta) log sigma(0) = (2/beta) log 2
        loss = npo_loss(tiny_gpt, tiny_gpt, ids, labels, 0.1, variant).detach()
        assert float(loss) == pytest.approx(20 * math.log(2))
    assert float(kl_loss(tiny_gpt, tiny_gpt, ids, labels, "paper").detach()) == pytest.approx(0.0, abs=1e-6)


def test_task_vector_and_whp_at_alpha_zero(corpus, tiny_gpt):
    torch.manual_seed(1)
    other = GPT(tiny_gpt.config).eval()
    ids = torch.tensor([corpus.encode(corpus.bios(corpus.forget)[0])])
    with torch.no_grad():
        z_t = tiny_gpt(ids).logits
        assert torch.allclose(task_vector(tiny_gpt, other, 0.0)(ids).logits, z_t)
        assert torch.allclose(WHPModel(tiny_gpt, other, 0.0)(ids).logits, z_t)
        z = WHPModel(tiny_gpt, other, 2.0)(ids).logits
        assert torch.allclose(z, z_t - 2.0 * torch.relu(other(ids).logits - z_t))


# -------------------------------------------------------------------------------------- API end to end
def test_evaluate_and_unlearn_run(corpus, tiny_gpt):
    m = evaluate(tiny_gpt, corpus, auc_retrain=0.5)
    assert set(m) == {"verbmem_f", "knowmem_f", "knowmem_r", "auc", "privleak"}
    assert 0 <= m["verbmem_f"] <= 100 and 0 <= m["auc"] <= 1 and np.isfinite(m["privleak"])
    assert math.isnan(evaluate(tiny_gpt, corpus)["privleak"])
    before = {k: v.clone() for k, v in tiny_gpt.state_dict().items()}
    r = unlearn("GA_GDR", tiny_gpt, corpus, reference_knowmem_f=-1.0, epochs=2, batch=2)
    assert r.met_rule is False and len(r.knowmem_f) == 2 and r.selected == 2.0  # rule never met: last
    assert all(torch.equal(before[k], v) for k, v in tiny_gpt.state_dict().items())  # target untouched
    r = unlearn("NPO", tiny_gpt, corpus, reference_knowmem_f=100.0, epochs=3, batch=2)
    assert r.met_rule and r.selected == 1.0  # met at the first epoch: training stopped there


def test_api_errors(corpus, tiny_gpt):
    with pytest.raises(ValueError, match="valid: GA, GA_GDR"):
        unlearn("SimNPO", tiny_gpt, corpus)
    with pytest.raises(ConfigError, match=r"unknown unlearning hyperparameter\(s\) \['learning_rate'\]"):
        unlearn("GA", tiny_gpt, corpus, learning_rate=1e-4)
    with pytest.raises(ConfigError):
        unlearn("GA", tiny_gpt, corpus, variant="logits")
    with pytest.raises(ConfigError):
        unlearn("GA", tiny_gpt, corpus, lr=-1.0)
    with pytest.raises(ValueError, match="needs reinforced"):
        unlearn("WHP", tiny_gpt, corpus)
    with pytest.raises(ValueError, match="at least one entity"):
        unlearn("GA", tiny_gpt, corpus, forget=())
    with pytest.raises(TypeError, match="GPT"):
        unlearn("GA", "model", corpus)
    with pytest.raises(TypeError, match="MuseCorpus"):
        evaluate(tiny_gpt, [("q", "a")])
    assert len(METHODS) == 8


def test_figure_configs_fail_fast():
    from papers.muse import fig_main_table, fig_scalability, fig_sustainability

    setup = fig_main_table.CONFIGS[fig_main_table.Scale.QUICK].setup
    with pytest.raises(ConfigError, match="official_variants"):
        fig_main_table.Config(setup, official_variants=("WHP",))
    for mod in (fig_scalability, fig_sustainability):
        with pytest.raises(ConfigError, match="no fixed epochs"):
            mod.Config(setup, methods=("Task Vector",))
        with pytest.raises(ConfigError, match="at least one"):
            mod.Config(setup, seeds=())

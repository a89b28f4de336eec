"""Claims: kinds, intervals and the unresolved state, paper numbers, the round trip through JSON (old records
included), the interval helpers, and the null controls of common/nulls.py."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from common.atomic import json_safe
from common.claims import Claim, bootstrap_interval, slope_interval
from common.nulls import (
    balanced_accuracy,
    constant_baseline,
    max_vs_null,
    random_groups,
    shuffled,
)


def test_existing_call_keeps_its_meaning():
    c = Claim.check("a", "s", 2.0, ">", 1.0, "paper says 3", "d")
    assert c.passed and c.state == "pass" and c.kind == "claim"
    assert (c.per_seed, c.interval, c.paper_number) == (None, None, None)
    assert (c.paper_unit, c.paper_source) == ("", "")
    assert c.line().startswith("[PASS] a: 2 > 1")
    assert not Claim.check("a", "s", 0.5, ">", 1.0).passed


@pytest.mark.parametrize(
    ("measured", "comparison", "interval", "state", "passed"),
    [
        (1.0, ">=", (0.95, 1.05), "pass", True),  # the whole interval clears 0.9
        (1.0, ">=", (0.8, 1.2), "unresolved", True),  # straddles 0.9: point passes, low end does not
        (0.85, ">=", (0.8, 0.95), "unresolved", False),  # straddles: point fails, high end passes
        (0.5, ">=", (0.4, 0.6), "fail", False),
        (0.9, ">=", (0.9, 1.0), "pass", True),  # ">=" holds at the low end itself
        (0.95, ">", (0.9, 1.0), "unresolved", True),  # ">" does not hold at the low end
        (0.5, "<", (0.2, 0.6), "pass", True),
        (0.5, "<", (0.2, 0.95), "unresolved", True),
        (math.nan, ">=", (0.8, 1.2), "fail", False),  # NaN measured fails, whatever the interval
        (1.0, ">=", (math.nan, math.nan), "unresolved", True),  # an interval that could not be computed
    ],
)
def test_state_by_point_and_interval(measured, comparison, interval, state, passed):
    c = Claim.check("x", "s", measured, comparison, 0.9, interval=interval)
    assert (c.state, c.passed) == (state, passed)
    assert c.line().startswith(f"[{state.upper()}] x:")


def test_nan_measured_fails_without_interval():
    c = Claim.check("x", "s", float("nan"), "<=", 1.0)
    assert not c.passed and c.state == "fail"


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="kind must be one of claim, sanity"):
        Claim.check("a", "s", 1.0, ">=", 0.0, kind="theorem")
    with pytest.raises(ValueError, match="low <= high"):
        Claim.check("a", "s", 1.0, ">=", 0.0, interval=(2.0, 1.0))
    with pytest.raises(ValueError, match=r"\(low, high\)"):
        Claim.check("a", "s", 1.0, ">=", 0.0, interval=(1.0, 2.0, 3.0))


def test_every_field_round_trips_through_json():
    c = Claim.check(
        "acc",
        "accuracy beats chance",
        0.8,
        ">=",
        0.5,
        "about 80% (Table 2, 7B)",
        "3 seeds",
        kind="sanity",
        per_seed=np.array([0.75, 0.8, 0.85]),
        interval=(0.75, 0.85),
        paper_number=80,
        paper_unit="%",
        paper_source="Table 2",
    )
    record = json.loads(json.dumps(json_safe(c.to_dict())))
    assert record["state"] == "pass" and record["per_seed"] == [0.75, 0.8, 0.85]
    back = Claim.from_dict(record)
    assert back == c and isinstance(back.per_seed, tuple) and isinstance(back.interval, tuple)
    assert back.paper_number == 80.0 and back.kind == "sanity"


def test_old_records_without_the_new_keys_load():
    old = {
        "id": "a",
        "statement": "s",
        "measured": None,  # NaN as strict JSON writes it
        "comparison": ">=",
        "threshold": 1.0,
        "passed": False,
        "paper_value": "p",
        "details": "d",
    }
    c = Claim.from_dict(old)
    assert math.isnan(c.measured) and c.kind == "claim" and c.interval is None and c.state == "fail"
    minimal = {k: old[k] for k in ("id", "statement", "comparison", "threshold", "passed")}
    assert Claim.from_dict({**minimal, "measured": 2.0}).paper_value == ""


def test_state_in_a_record_is_recomputed_not_trusted():
    record = Claim.check("a", "s", 0.0, ">=", 1.0).to_dict()
    record["state"] = "pass"
    assert Claim.from_dict(record).state == "fail"


def test_bootstrap_interval_contains_the_mean_and_is_seeded():
    rng = np.random.default_rng(0)
    values = rng.normal(1.0, 0.2, size=8)
    low, high = bootstrap_interval(values)
    assert low < values.mean() < high and high - low < 1.0
    assert bootstrap_interval(values) == (low, high)  # same seed, same bits
    assert bootstrap_interval(values, confidence=0.5) != (low, high)
    med_low, med_high = bootstrap_interval(values, statistic=np.median)
    assert med_low <= np.median(values) <= med_high


def test_bootstrap_interval_degenerate_cases():
    assert bootstrap_interval([3.0]) == (3.0, 3.0)
    assert bootstrap_interval([2.0, 2.0, 2.0]) == (2.0, 2.0)
    with pytest.raises(ValueError, match="at least one value"):
        bootstrap_interval([])
    low, high = bootstrap_interval([1.0, 2.0, 3.0])
    assert math.isfinite(low) and math.isfinite(high) and low <= 2.0 <= high


def test_slope_interval_covers_the_true_slope():
    rng = np.random.default_rng(1)
    x = np.linspace(0, 1, 20)
    y = 2.0 * x + rng.normal(0, 0.05, size=x.size)
    low, high = slope_interval(x, y)
    assert low < 2.0 < high and high - low < 0.5
    exact_low, exact_high = slope_interval([0, 1, 2], [1, 3, 5])
    assert exact_low == pytest.approx(2.0) and exact_high == pytest.approx(2.0)
    with pytest.raises(ValueError, match="at least 3 points"):
        slope_interval([0, 1], [0, 1])


def test_a_claim_with_an_interval_from_the_helpers():
    per_seed = [0.62, 0.58, 0.7, 0.55, 0.66]
    interval = bootstrap_interval(per_seed)
    c = Claim.check("gain", "s", float(np.mean(per_seed)), ">", 0.6, per_seed=per_seed, interval=interval)
    assert c.passed and c.state == "unresolved"  # mean 0.622 > 0.6, but the interval reaches below it


# ---------------------------------------------------------------------------------------------------------
# Null controls
# ---------------------------------------------------------------------------------------------------------
def _best_predictor_accuracy(data) -> float:
    """The selection under test: the best of many predictors (checkpoints, say) on the labels."""
    predictions, labels = data
    return float(((predictions == labels[None, :]).mean(axis=1)).max())


def _noise_only(seed: int, n_predictors: int = 40, n: int = 120):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, size=(n_predictors, n)), rng.integers(0, 2, size=n)


def test_null_control_rejects_a_selection_that_only_picks_noise():
    """The best of 40 coin-flip predictors scores well above 50%, and a claim 'beats chance' would pass;
    against the same selection on shuffled labels it does not (a negative control that fails)."""
    predictions, labels = _noise_only(0)
    observed = _best_predictor_accuracy((predictions, labels))
    assert Claim.check("naive", "best beats chance", observed, ">", 0.55).passed  # the trap
    result = max_vs_null(_best_predictor_accuracy, (predictions, labels), shuffled(key=1), n_null=200, seed=0)
    assert result.observed == observed and result.null_values.shape == (200,)
    assert not result.exceeds and result.p_value > 0.05
    claim = Claim.check("controlled", "best beats the null's 95th percentile", observed, ">", result.quantile)
    assert not claim.passed
    # calibrated: over 20 noise-only datasets the control exceeds its 95th percentile about 5% of the time
    exceed = sum(
        max_vs_null(_best_predictor_accuracy, _noise_only(s), shuffled(key=1), n_null=100, seed=s).exceeds
        for s in range(1, 21)
    )
    assert exceed <= 3


def test_null_control_accepts_a_real_effect():
    predictions, labels = _noise_only(0)
    rng = np.random.default_rng(5)
    good = np.where(rng.random(labels.size) < 0.8, labels, 1 - labels)  # one predictor is 80% right
    predictions = predictions.copy()
    predictions[7] = good
    result = max_vs_null(_best_predictor_accuracy, (predictions, labels), shuffled(key=1), n_null=200, seed=0)
    assert result.exceeds and result.p_value < 0.01
    assert Claim.check("controlled", "s", result.observed, ">", result.quantile).passed


def test_null_control_is_seeded():
    data = _noise_only(3)
    a = max_vs_null(_best_predictor_accuracy, data, shuffled(key=1), n_null=50, seed=4)
    b = max_vs_null(_best_predictor_accuracy, data, shuffled(key=1), n_null=50, seed=4)
    assert np.array_equal(a.null_values, b.null_values) and a.quantile == b.quantile
    with pytest.raises(ValueError, match="n_null"):
        max_vs_null(_best_predictor_accuracy, data, shuffled(key=1), n_null=0)


def test_shuffled_and_random_groups_nulls():
    rng = np.random.default_rng(0)
    d = {"x": np.arange(5), "y": np.arange(5)}
    out = shuffled("y")(d, rng)
    assert np.array_equal(out["x"], d["x"]) and sorted(out["y"]) == list(range(5))
    assert sorted(shuffled()(np.arange(6), rng)) == list(range(6))
    groups = random_groups([2, 3])(list("abcdefgh"), rng)
    assert [len(g) for g in groups] == [2, 3] and len(set(np.concatenate(groups))) == 5
    with pytest.raises(ValueError, match="do not fit"):
        random_groups([5, 5])(list("abc"), rng)


def test_balanced_accuracy_and_constant_baseline():
    truth = np.array([0] * 90 + [1] * 10)
    constant = np.zeros(100, dtype=int)
    assert (constant == truth).mean() == 0.9  # plain accuracy rewards the majority guess
    assert balanced_accuracy(constant, truth) == pytest.approx(0.5)
    assert balanced_accuracy(truth, truth) == pytest.approx(1.0)
    base = constant_baseline(truth)
    assert base.label == 0 and base.accuracy == pytest.approx(0.9) and base.balanced_accuracy == 0.5
    assert constant_baseline(["a", "b", "b", "c"]).label == "b"
    with pytest.raises(ValueError, match="same shape"):
        balanced_accuracy([0, 1], [0, 1, 1])


def test_over_seeds_gives_per_seed_values_and_the_bootstrap_interval():
    from common.claims import over_seeds

    values = [0.1, 0.3, 0.2, 0.4]
    stats = over_seeds(values)
    assert stats["per_seed"] == tuple(values)
    assert stats["interval"] == bootstrap_interval(values)
    claim = Claim.check("x.y", "s", 0.25, ">=", 0.0, **stats)
    assert claim.interval[0] <= 0.25 <= claim.interval[1] and claim.state == "pass"


def test_correlation_interval_matches_fisher_z_and_covers_simulated_correlations():
    from common.claims import correlation_interval

    low, high = correlation_interval(0.5, 103, rank=False)
    half = 1.959963984540054 / 10.0
    assert low == pytest.approx(math.tanh(math.atanh(0.5) - half))
    assert high == pytest.approx(math.tanh(math.atanh(0.5) + half))
    spearman = correlation_interval(0.5, 103)
    assert spearman[1] - spearman[0] > high - low  # the Spearman interval is wider
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(400):  # Pearson r of 30 correlated normal pairs with rho = 0.6
        x = rng.standard_normal(30)
        y = 0.6 * x + 0.8 * rng.standard_normal(30)
        lo, hi = correlation_interval(float(np.corrcoef(x, y)[0, 1]), 30, rank=False)
        covered += lo <= 0.6 <= hi
    assert 0.9 <= covered / 400 <= 0.99
    with pytest.raises(ValueError, match="n >= 4"):
        correlation_interval(0.1, 3)


def test_difference_interval_is_welchs():
    from scipy import stats

    from common.claims import difference_interval

    a, b = [1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 0.0, 1.0, 0.5]
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert difference_interval(a, b) == pytest.approx((ci.low, ci.high))
    with pytest.raises(ValueError, match=">= 2 values"):
        difference_interval([1.0], b)

"""The real-teacher check of proofs_checks/progressive_distillation.py: exact degree-1 coefficients of
teacher checkpoints trained by the paper's loop (n = 14, k = 4), and its negative control (the final-teacher
test rejects the peak transition checkpoint). Its claims are measurements: the support-selectivity claim is
red at this scale (the near-initial net's random features are as large as the in-support mass), so this test
asserts what the exact coefficients must satisfy, not that every claim passes."""

from __future__ import annotations

import torch

from proofs_checks import progressive_distillation as pd


def test_real_teacher_coefficients_are_exact_and_the_control_rejects():
    with pd._torch_threads(1):
        r = pd.real_teacher_coefficients()
    rho, acc = r["rho"], r["acc"]
    assert rho.shape == (len(r["teachers"].ckpt_steps), pd.REAL_TEACHER.n)
    assert acc[0] < 0.6 and acc[-1] >= 0.99, acc  # init, a transition and a converged teacher
    # exact enumeration: E[x_i p1] equals the sum over inputs, and |rho_i| <= 1/2 (p1 in [0, 1], E x_i = 0)
    p1 = pd.teacher_probabilities(r["teachers"], len(acc) - 1, r["x_packed"])
    assert torch.allclose(rho[-1], (r["x"] * p1[:, None]).sum(0) / 2**pd.REAL_TEACHER.n, atol=1e-15)
    assert float(rho.abs().max()) <= 0.5
    claims = {c.id.rsplit(".", 1)[1]: c for c in pd.check_real_teacher()}
    assert len(claims) == 5
    assert claims["final_test_rejects_peak"].kind == "sanity" and claims["final_test_rejects_peak"].passed
    assert claims["final_has_no_degree1"].passed  # the control and the claim use the same test
    assert claims["final_has_no_degree1"].measured < claims["final_test_rejects_peak"].measured


def test_planted_teacher_claims_are_labelled_by_construction():
    """The planted teacher's in-support mass is put there by hand, so the claims that read it are sanity."""
    claims = {c.id.rsplit(".", 1)[1]: c for c in pd._single_threaded(pd.check_gradient_mechanism)}
    for name in ("zero_init_identity", "teacher_gradient_persists", "off_support_small", "advantage_grows"):
        assert claims[name].kind == "sanity"
    assert claims["labels_gradient_decays"].kind == "claim"

"""The Python face of the `companion` kernels: public ops, their pure-PyTorch references, and
`extension_available()`.

Each op family lives in its own module (reference, input validation, register_fake, register_autograd).
Public ops run the compiled kernels (torch.ops.companion.*); without them they raise a RuntimeError that
says how to build, unless COMPANION_REFERENCE_OPS=1 explicitly selects the references.
"""

from common.ops._extension import extension_available, use_reference_ops
from common.ops.dpo import (
    dpo_loss,
    dpo_loss_reference,
    fused_linear_dpo_loss,
    fused_linear_dpo_loss_reference,
    sequence_logps,
    sequence_logps_reference,
    token_logps,
    token_logps_reference,
)
from common.ops.ensemble_mlp import (
    EnsembleMLP,
    accuracy,
    cross_entropy_loss,
    distillation_loss,
    ensemble_mlp,
    ensemble_mlp_reference,
    hinge_loss,
    labels_to_classes,
    teacher_targets,
)
from common.ops.grad_projection import (
    kronecker_dims,
    per_sample_linear_grads_projected,
    per_sample_linear_grads_projected_reference,
    project,
    project_reference,
    random_signs,
    random_signs_reference,
)
from common.ops.gradient_features import GradientFeatures, gradient_features_reference
from common.ops.logsumexp import logsumexp, logsumexp_reference
from common.ops.sparse_parity import (
    all_subsets,
    enumerate_inputs,
    exact_monomial_correlations,
    monomial_correlations,
    monomial_correlations_reference,
    pack,
    pack_reference,
    random_subsets,
    sample,
    sample_reference,
    subset_masks,
    unpack,
    unpack_reference,
)

__all__ = ["extension_available", "logsumexp", "logsumexp_reference", "use_reference_ops"]
__all__ += [  # family 1: fused linear log-probs and DPO
    "dpo_loss",
    "dpo_loss_reference",
    "fused_linear_dpo_loss",
    "fused_linear_dpo_loss_reference",
    "sequence_logps",
    "sequence_logps_reference",
    "token_logps",
    "token_logps_reference",
]
__all__ += [  # family 2: per-sample gradient projection
    "GradientFeatures",
    "gradient_features_reference",
    "kronecker_dims",
    "per_sample_linear_grads_projected",
    "per_sample_linear_grads_projected_reference",
    "project",
    "project_reference",
    "random_signs",
    "random_signs_reference",
]
__all__ += [  # family 3: sparse parity
    "EnsembleMLP",
    "accuracy",
    "all_subsets",
    "cross_entropy_loss",
    "distillation_loss",
    "ensemble_mlp",
    "ensemble_mlp_reference",
    "enumerate_inputs",
    "exact_monomial_correlations",
    "hinge_loss",
    "labels_to_classes",
    "monomial_correlations",
    "monomial_correlations_reference",
    "pack",
    "pack_reference",
    "random_subsets",
    "sample",
    "sample_reference",
    "subset_masks",
    "teacher_targets",
    "unpack",
    "unpack_reference",
]

"""The Python face of the `companion` kernels: public ops, their pure-PyTorch references, and
`extension_available()`.

Each op family lives in its own module (reference, input validation, register_fake, register_autograd).
Public ops run the compiled kernels (torch.ops.companion.*); without them they raise a RuntimeError that
says how to build, unless COMPANION_REFERENCE_OPS=1 explicitly selects the references.
"""

from common.ops._extension import extension_available, use_reference_ops
from common.ops.logsumexp import logsumexp, logsumexp_reference

__all__ = ["extension_available", "logsumexp", "logsumexp_reference", "use_reference_ops"]

"""The papers of the companion that have no package yet, shown as "planned" by `companion list` and the
report. A paper's metadata lives in exactly one place: here while it is planned, in its package's
`__init__.py` (`PAPER`) once it is implemented (then its entry here is deleted; a test checks both ways).
"""

from common.experiment import Paper

PLANNED: tuple[Paper, ...] = (
)

"""One subpackage per paper; each defines PAPER (common.experiment.Paper) and one module per figure."""

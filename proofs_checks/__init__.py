"""One module per theorem family; each defines CHECKS, a tuple of common.experiment.Check."""

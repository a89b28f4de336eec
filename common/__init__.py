"""Shared core of paper-companion: ops (kernels), models, data, training, experiments, plotting, report."""

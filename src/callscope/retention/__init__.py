"""Retention: drop old calls' audio, old call events and the job queue's old log, in small
transactions, from a worker's supervised task or once with `callscope prune`."""

from callscope.retention.policy import RetentionPolicy
from callscope.retention.pruner import preview, prune, pruning_task
from callscope.retention.report import PruneReport, describe

__all__ = ["PruneReport", "RetentionPolicy", "describe", "preview", "prune", "pruning_task"]

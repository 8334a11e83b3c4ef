"""The task adaptor for a dataset object, chosen from the task table
(:data:`energybench.tasks.registry.TASKS`)."""

from __future__ import annotations

from typing import Any

from energybench.tasks.base import Task
from energybench.tasks.registry import TASKS


def make_task(dataset: Any) -> Task:
    """The task adaptor for a dataset object (:class:`TypeError` when no task serves it)."""
    task: Task = TASKS.make(dataset)
    return task

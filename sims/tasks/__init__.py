"""Sim tasks: the one table that maps a task name to its class."""

from __future__ import annotations

from agentrt.errors import ConfigError
from sims.tasks.base import Task
from sims.tasks.pick_place import PickPlaceTask
from sims.tasks.push import PushTask
from sims.tasks.reach import ReachTask

__all__ = ["TASKS", "TASK_NAMES", "Task", "make_task", "ReachTask", "PushTask", "PickPlaceTask"]

TASKS: dict[str, type[Task]] = {
    "reach": ReachTask,
    "push": PushTask,
    "pick_place": PickPlaceTask,
}
TASK_NAMES: tuple[str, ...] = tuple(TASKS)  # for CLI choices, help text and configs: never typed by hand


def make_task(name: str) -> Task:
    """A new task instance by name; ConfigError lists the known names."""
    cls = TASKS.get(name.replace("-", "_"))
    if cls is None:
        raise ConfigError(f"unknown task '{name}': expected one of {', '.join(TASKS)}")
    return cls()

"""How much memory the engine may use for one tensor or one file: the memory budget.

Sizes come from the files (a shape, a size field, a zip header) and a downloaded folder can
declare anything; every read is checked against this budget before it allocates. Default: a
quarter of the memory the process may use (physical memory, or the container's limit when
lower); the environment variable CKPT_GUI_MEMORY_BUDGET (bytes, read once) or
set_memory_budget (the GUI's setting) overrides it.
"""
from __future__ import annotations

import functools
import os

from ..textfmt import human_bytes

ENV_VAR = "CKPT_GUI_MEMORY_BUDGET"
_chosen: int | None = None


class OverBudget(ValueError):
    """A read would need more memory than the budget allows."""


def set_memory_budget(nbytes: int | None) -> None:
    """Use ``nbytes`` as the budget (None: back to the environment variable or the default)."""
    global _chosen
    _chosen = nbytes


def memory_budget() -> int:
    """The budget in bytes: set_memory_budget's, else CKPT_GUI_MEMORY_BUDGET, else a quarter
    of the available memory (the two read once: a scan asks for every file it reads)."""
    return _chosen if _chosen is not None else _default_budget()


@functools.cache
def _default_budget() -> int:
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        try:
            return max(int(float(env)), 0)
        except ValueError:
            pass  # a malformed value: the default
    return _available_memory() // 4


def _available_memory() -> int:
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        physical = 8 << 30
    try:  # a container's cgroup v2 limit ("max": none)
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit.isdigit():
            physical = min(physical, int(limit))
    except OSError:
        pass
    return physical


def check_fits(what: str, nbytes: int) -> None:
    """OverBudget naming ``what`` and both sizes unless ``nbytes`` fits the budget."""
    budget = memory_budget()
    if nbytes > budget:
        raise OverBudget(f"{what}: {human_bytes(nbytes)} does not fit the memory budget of "
                         f"{human_bytes(budget)} (set {ENV_VAR} to change it)")

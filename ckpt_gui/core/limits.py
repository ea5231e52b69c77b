"""The memory budget: how much a restore may allocate for a template built from a checkpoint."""
from __future__ import annotations

import os


def memory_budget() -> int:
    """Bytes: CKPT_GUI_MEMORY_BUDGET when set (and a number), else a quarter of the physical
    memory."""
    try:
        return max(int(float(os.environ["CKPT_GUI_MEMORY_BUDGET"])), 0)
    except (KeyError, ValueError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4

"""The memory budget: how much a restore may allocate for a template built from a checkpoint."""
from __future__ import annotations

import os


def memory_budget() -> int:
    """Bytes: CKPT_GUI_MEMORY_BUDGET when set, else a quarter of the physical memory."""
    env = os.environ.get("CKPT_GUI_MEMORY_BUDGET", "").strip()
    if env:
        return int(env)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4

"""Give memory freed while loading data back to the operating system.

Reading and validating a large file allocates several temporary copies of the columns. They are
freed when loading ends, but the allocators keep the pages: Arrow's memory pool (mimalloc or
jemalloc) and glibc's malloc both hold freed memory for reuse. For a 1M-bar file that is about
70 MiB the rest of the run never needs. This asks both to return it; it changes no data and is a
no-op where an allocator does not support it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import cache


def available_memory() -> int | None:
    """Bytes this process could still use: the kernel's MemAvailable, capped by the cgroup's
    memory limit when there is one (containers); None where neither can be read."""
    found = []
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    for path, usage in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            with open(path) as limit, open(usage) as used:
                text = limit.read().strip()
                if text != "max" and int(text) < 1 << 60:
                    found.append(int(text) - int(used.read().strip()))
        except (OSError, ValueError):
            continue
        break
    return min(found) if found else None


def return_free_memory() -> None:
    """Best effort: release Arrow's and glibc's unused memory to the OS."""
    arrow = sys.modules.get("pyarrow")
    if arrow is not None:  # only if a loader used it; never imported just for this
        arrow.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@cache
def _malloc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (e.g. musl has no malloc_trim)
        return None

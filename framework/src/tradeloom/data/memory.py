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

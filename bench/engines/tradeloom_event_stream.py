"""tradeloom's event engine streaming the file in chunks (``run.stream = "always"``).

Run with the workspace's Python: ``uv run python bench/engines/tradeloom_event_stream.py --data
FILE``. The same workload as ``tradeloom_event.py``; the bars are read and validated 65,536 rows
at a time while the loop runs, so ``loop_s`` includes reading the data.
"""

from __future__ import annotations

from tradeloom_event import main

if __name__ == "__main__":
    main(stream=True)

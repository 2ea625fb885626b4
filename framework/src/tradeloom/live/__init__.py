"""Live data: the streaming interface's clocks, the replay source and feed-staleness monitoring."""

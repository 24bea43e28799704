"""The read side: traces, usage, audit, replay, datasets, as the routers and the CLI ask."""

"""Writing for every channel: templates rendered per channel and locale, each rendering fitted to
its channel's limits by the channel's spec, and the crisis linter that reads what was written.
Pure: no I/O beyond the templates."""

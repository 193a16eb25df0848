"""Writing for every channel: templates rendered per channel and locale, fitted to each channel's
limits, and the crisis linter that reads what was written. Pure: no I/O beyond the templates."""

"""Where bytes from other parties come in: one bounded reader, one bounded parser, one
endpoint check. See ``docs/untrusted-input.md`` for every limit and the test proving it."""

"""LedgerLearn contribution marketplace: contracts client, storage, learning, aggregation."""

__version__ = "0.1.0"

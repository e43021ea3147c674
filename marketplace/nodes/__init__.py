"""Marketplace nodes: the I/O around the pure round pipeline.

A :class:`~marketplace.nodes.trainer.TrainerNode` trains on data that never leaves it
and commits update CIDs; an :class:`~marketplace.nodes.aggregator.AggregatorNode` fetches,
filters, aggregates and commits each round in one transaction;
:func:`~marketplace.nodes.simulate.simulate` runs a whole project in one process.
"""

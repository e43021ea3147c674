"""Marketplace nodes: the I/O around the pure round pipeline.

A :class:`~marketplace.nodes.trainer.TrainerNode` trains on data that never leaves it
and commits update CIDs and sketch commitments; an
:class:`~marketplace.nodes.aggregator.AggregatorNode` fetches, filters, aggregates and
commits each round in one transaction, with a Groth16 proof of the filter when the project
has a round verifier (:mod:`~marketplace.rounds.zkround`);
:func:`~marketplace.nodes.simulate.simulate` runs a whole project in one process.
"""

"""The chain layer: the only code that talks to Ethereum.

``connect`` gives a :class:`Chain` (embedded py-evm or any JSON-RPC node), ``accounts``
resolves who signs, ``tx`` sends and decodes reverts, ``artifacts`` is the one place that
knows the contract ABIs, ``deploy`` writes deployment manifests, ``market`` is the typed
client of ``ContributionMarket``.
"""

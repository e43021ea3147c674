"""Privacy of model updates: who may read one, with how much noise, what metadata says.

``settings`` (:mod:`marketplace.learning.privacy_spec`, part of the model spec, on-chain by
CID): the project's declared privacy;
``keys``: reader and trainer keys derived from a node's Ethereum key; ``envelope``: sealing
an update to the readers; ``accountant``: the DP-SGD epsilon; ``updates``: what the trainer
publishes and what the aggregator or auditor admits. ``docs/privacy.md`` has the threat
model.
"""

from marketplace.learning.privacy_spec import DPSettings, PrivacySettings, published_sample_count

__all__ = ["DPSettings", "PrivacySettings", "published_sample_count"]

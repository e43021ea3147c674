"""Privacy of model updates: who may read one, with how much noise, what metadata says.

``settings``: the project's declared privacy (part of the model spec, on-chain by CID);
``keys``: reader and trainer keys derived from a node's Ethereum key; ``envelope``: sealing
an update to the readers; ``accountant``: the DP-SGD epsilon; ``updates``: what the trainer
publishes and what the aggregator or auditor admits. ``docs/privacy.md`` has the threat
model.
"""

from marketplace.privacy.settings import DPSettings, PrivacySettings, published_sample_count

__all__ = ["DPSettings", "PrivacySettings", "published_sample_count"]

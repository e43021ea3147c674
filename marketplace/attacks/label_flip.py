"""Label flipping: a data-poisoning attack applied before local training.

Every label ``y`` becomes ``C - 1 - y``, the fixed permutation studied by Tolpegin et
al. 2020 ("Data Poisoning Attacks Against Federated Learning Systems", ESORICS) and by
Fung et al. 2018 (FoolsGold) after Biggio et al. 2012 ("Poisoning Attacks against
Support Vector Machines"). The attacker then trains honestly on the poisoned data, so its
update looks like a normal update, just pointing the wrong way.
"""

from __future__ import annotations

from marketplace.learning.datasets import Dataset


def label_flip(data: Dataset) -> Dataset:
    """A copy of ``data`` with labels mapped ``y -> num_classes - 1 - y``."""
    return Dataset(data.x, data.num_classes - 1 - data.y, data.num_classes, data.input_shape)

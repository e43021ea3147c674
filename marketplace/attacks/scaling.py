"""Scaling (boosting): submit the update multiplied by a large factor.

Explicit boosting of Bhagoji et al. 2019 ("Analyzing Federated Learning through an
Adversarial Lens", ICML) and the model-replacement scaling of Bagdasaryan et al. 2020
("How To Backdoor Federated Learning", AISTATS): a factor near ``n`` lets one client
outweigh the average of the others.
"""

from __future__ import annotations

from torch import Tensor


def scaling(update: Tensor, factor: float = 10.0) -> Tensor:
    """``factor * update``; a new tensor."""
    return update * factor

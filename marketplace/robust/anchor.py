"""The owner's trust anchor: an update trained on the owner's clean validation data.

Statistics over the updates alone (median, MAD, pairwise distances) only know what the
majority sends. On non-IID data one round's honest updates are nearly orthogonal to each
other, so a sign-flipped or label-flipped update sits inside the honest spread and no such
test can name it (measured on ``scripts/bench_robust.py``, MNIST-1D, Dirichlet 0.5: 30%
sign flippers passed every stage of the default filter in every round). The owner holds
something an attacker cannot forge: a small clean data set. FLTrust (Cao et al., NDSS
2021, "FLTrust: Byzantine-robust Federated Learning via Trust Bootstrapping") computes a
*server update* on such a root set with the clients' own local-training procedure and
trusts each client in proportion to ReLU of its cosine with it; Zeno (Xie et al., ICML
2019) and Zeno++ (ICML 2020) accept an update when it lowers the loss on server-held
validation data, the same question asked through the loss.

Why a trained update and not the validation gradient: measured along an honest training
run (MNIST-1D, Dirichlet 0.5, MLP, 2 local epochs of SGD with momentum), about 30% of the
honest updates had a negative cosine with ``-grad L_val`` at the global model (after
several local steps a non-IID update is far from the first gradient), against under 1%
with a server update trained like a client; label-flipped updates passed the gradient test
in 70 of 90 cases and the server-update test in 25. FLTrust's assumption is therefore
ours: the recipe (epochs, learning rate, momentum, batch size) should be the one the
trainers use; a looser one still helps, less (``scripts/bench_robust.py`` measures both).

The anchor is a deterministic function of (spec, global parameters, validation data,
recipe, seed) on one thread (:func:`marketplace.learning.local_train`): an auditor holding
the same validation data recomputes it bit for bit.

Assumption this adds: the owner's validation data are clean and roughly representative of
the task. Unrepresentative validation data make honest clients whose data the validation
set lacks look harmful; poisoned validation data hand the attacker the anchor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor

from marketplace.errors import ConfigError
from marketplace.learning import Dataset, ModelSpec, TrainConfig, TrainingRecipe, local_train


@dataclass(frozen=True)
class AnchorRecipe:
    """How the server trains its anchor update (FLTrust: as the clients train).

    Where it comes from, first match: the rule's ``anchor_*`` parameters; the recipe the
    project's model spec declares (:class:`~marketplace.learning.TrainingRecipe`, which
    trainers follow by default); these defaults, which equal ``TrainingRecipe``'s and so
    ``ledgerlearn trainer run``'s (one epoch of plain SGD, lr 0.2, batch 32; a test keeps
    them equal).
    """

    epochs: int = 1
    lr: float = 0.2
    momentum: float = 0.0
    batch_size: int = 32

    def __post_init__(self) -> None:
        if not (
            self.epochs >= 1
            and self.batch_size >= 1
            and float(self.epochs).is_integer()
            and float(self.batch_size).is_integer()
            and math.isfinite(self.lr)
            and self.lr > 0
            and 0 <= self.momentum < 1
        ):
            raise ConfigError(
                f"anchor recipe {self} is out of range: need whole epochs >= 1 and "
                "batch_size >= 1, finite lr > 0, 0 <= momentum < 1"
            )

    @classmethod
    def declared(cls, recipe: TrainingRecipe) -> AnchorRecipe:
        """The anchor recipe equal to a model spec's declared training recipe."""
        return cls(recipe.epochs, recipe.lr, recipe.momentum, recipe.batch_size)

    def train_config(self, seed: int) -> TrainConfig:
        """The local-training configuration of the anchor update for one round."""
        return TrainConfig(
            epochs=int(self.epochs),
            lr=self.lr,
            momentum=self.momentum,
            batch_size=int(self.batch_size),
            seed=seed,
        )


def server_update(
    spec: ModelSpec, global_params: Tensor, validation: Dataset, recipe: AnchorRecipe, seed: int
) -> Tensor:
    """``float32[d]``: FLTrust's server update, ``local_train`` on the validation data from
    ``global_params`` with ``recipe`` (batch order drawn from ``seed``)."""
    return local_train(spec, global_params, validation, recipe.train_config(seed))

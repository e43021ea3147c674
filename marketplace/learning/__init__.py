"""Federated-learning building blocks: model specs, offline datasets, partitions, training.

Everything here is pure computation on tensors (no chain, no storage, no network): the
trainer node, the aggregator and the auditor all call the same deterministic functions.
"""

from marketplace.learning.datasets import DATASETS, Dataset, load_dataset, load_local
from marketplace.learning.models import (
    ModelSpec,
    TrainingRecipe,
    build_model,
    get_flat_params,
    init_params,
    num_params,
    set_flat_params,
)
from marketplace.learning.partition import PartitionScheme, parse_scheme, partition
from marketplace.learning.train import TrainConfig, evaluate, evaluate_many, local_train

__all__ = [
    "DATASETS",
    "Dataset",
    "ModelSpec",
    "PartitionScheme",
    "TrainConfig",
    "TrainingRecipe",
    "build_model",
    "evaluate",
    "evaluate_many",
    "get_flat_params",
    "init_params",
    "load_dataset",
    "load_local",
    "local_train",
    "num_params",
    "parse_scheme",
    "partition",
    "set_flat_params",
]

"""A project made from the owner's own data (issue 15): `project create --model-spec`
commits the spec and the validation file fitted to it; the aggregator refuses validation
data other than the committed set before its first round; a project without a spec names
the fix instead of a placeholder CID."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from marketplace.chain.market import ZERO32
from marketplace.cli.project_cmds import _model_spec, _validation_digest
from marketplace.errors import ConfigError, DatasetError
from marketplace.learning import ModelSpec, load_dataset
from marketplace.learning.datafiles import load_for_spec
from marketplace.nodes.aggregator import AggregatorNode
from marketplace.nodes.trainer import check_project_spec
from marketplace.rounds.codec import spec_cid
from marketplace.storage import MemoryStore
from marketplace.storage.cid import digest_of

pytestmark = pytest.mark.integration

SPEC = ModelSpec.for_data("mlp", (8, 8), 10)


def _files(tmp_path: Path) -> tuple[Path, Path, Path]:
    _, validation = load_dataset("digits", 0)
    x, y = validation.x.numpy(), validation.y.numpy()
    committed, other = tmp_path / "validation.npz", tmp_path / "other.npz"
    np.savez(committed, x=x, y=y)
    np.savez(other, x=x[:-1], y=y[:-1])
    spec_file = tmp_path / "spec.json"
    spec_file.write_bytes(SPEC.to_json_bytes())
    return committed, other, spec_file


def test_create_commits_the_spec_file_and_the_validation_set_fitted_to_it(
    tmp_path: Path,
) -> None:
    committed, _, spec_file = _files(tmp_path)
    digest, spec = _model_spec(spec_file, None)
    assert spec == SPEC and digest == digest_of(spec_cid(SPEC))
    from marketplace.rounds.codec import validation_commitment

    assert _validation_digest(None, committed, spec) == validation_commitment(
        load_for_spec(committed, SPEC)
    )
    flat = tmp_path / "flat.npz"
    x = np.load(committed)["x"]
    np.savez(flat, x=x.reshape(len(x), 64), y=np.load(committed)["y"])
    with pytest.raises(DatasetError, match=r"but the spec wants \(N, 8, 8\): reshape it"):
        _validation_digest(None, flat, spec)  # refused before anything is sent
    assert _model_spec(spec_file, spec_cid(SPEC)) == (digest, spec)  # a matching CID is fine
    with pytest.raises(ConfigError, match=r"--model-spec-cid bafk\w+ is not the CID of"):
        _model_spec(spec_file, "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
    with pytest.raises(ConfigError, match="`ledgerlearn aggregator spec --data"):
        _model_spec(tmp_path / "missing.json", None)


def test_aggregator_refuses_validation_data_other_than_the_commitment(
    world, tmp_path: Path
) -> None:
    committed, other, spec_file = _files(tmp_path)
    digest, spec = _model_spec(spec_file, None)
    project, _ = world.market.create_project(
        reward=10**18,
        aggregator=world.aggregator.address,
        rounds=1,
        round_duration=600,
        min_stake=10**15,
        model_spec_cid=digest,
        validation_commitment=_validation_digest(None, committed, spec),
    )
    info = world.market.project(project)
    assert check_project_spec(spec, info, "spec.json") == spec
    other_spec = ModelSpec.for_data("logreg", (8, 8), 10)
    with pytest.raises(ConfigError, match=r"^mine\.json has CID bafk\w+ but project \d+ committed"):
        check_project_spec(other_spec, info, "mine.json")  # a trainer given the wrong file
    node = AggregatorNode(world.as_(world.aggregator), project, MemoryStore(), None)
    node.publish_spec(spec)
    node.check_validation(load_for_spec(committed, node.spec()), "validation.npz")
    with pytest.raises(ConfigError) as err:
        node.check_validation(load_for_spec(other, node.spec()), "other.npz")
    message = str(err.value)
    assert message.startswith(f"other.npz is not the validation set project {project} committed")
    assert "`project create --validation-data`" in message and "\n" not in message


def test_a_project_without_a_spec_names_the_fix_not_a_placeholder_cid(world) -> None:
    project, _ = world.market.create_project(
        reward=10**18,
        aggregator=world.aggregator.address,
        rounds=1,
        round_duration=600,
        min_stake=10**15,
    )
    assert world.market.project(project).model_spec_cid == ZERO32
    node = AggregatorNode(world.as_(world.aggregator), project, MemoryStore(), None)
    info = world.market.project(project)
    for call in (
        node.spec,
        lambda: node.publish_spec(SPEC),
        lambda: check_project_spec(SPEC, info),
    ):
        with pytest.raises(ConfigError) as err:
            call()
        assert "was created without a model spec" in str(err.value)
        assert "project create --model-spec spec.json" in str(err.value)
        assert "was created without a model spec, so it cannot train" in str(err.value)
        assert "bafk" not in str(err.value)

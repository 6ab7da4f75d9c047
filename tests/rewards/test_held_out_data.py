"""``--held-out-data``: episodes collected apart from the run's data join the heads' pool.

The heads' data is the run's test split; a held-out dataset (another collection seed, another
folder) adds every one of its episodes, and no dataset the world model may have trained on is
accepted as one.
"""

from __future__ import annotations

import json
import shutil

import pytest
from latent_testing import SIZE, tiny_dmc_data, tiny_dmc_run

import keypoint_wm
from keypoint_wm.errors import UsageError
from keypoint_wm.rewards import RewardTrainConfig, collect_reward_sequences
from keypoint_wm.rewards.evaluate import evaluate_reward_prediction
from keypoint_wm.rewards.sequences import check_held_out
from keypoint_wm.rewards.train import train_reward_heads

pytestmark = pytest.mark.integration

TASK = "cartpole-balance"


@pytest.fixture(scope="module")
def dmc(tmp_path_factory):
    from keypoint_wm.collect.config import CollectConfig
    from keypoint_wm.collect.runner import collect_dataset

    base = tmp_path_factory.getbasetemp()
    extra = tmp_path_factory.mktemp("held-out") / "data"
    config = CollectConfig(
        tasks=(TASK,), episodes=3, steps=30, action_repeat=2, size=SIZE, seed=99, out=extra
    )
    collect_dataset(config, workers=1, progress=False)
    model = keypoint_wm.load(tiny_dmc_run(base), device="cpu", precision="fp32")
    return model, tiny_dmc_data(base), extra


def test_every_held_out_episode_joins_the_test_splits_episodes(dmc):
    model, data, extra = dmc
    kwargs = {"window": 10, "stride": 10, "tasks": [TASK], "progress": False}
    own = collect_reward_sequences(model, data, **kwargs)[TASK]
    both = collect_reward_sequences(model, data, held_out=(extra,), **kwargs)[TASK]
    added = sorted(str(p) for p in (extra / TASK).glob("*.npz"))
    assert len(added) == 3
    assert both.files == own.files + added  # the run's test split first, then every new one
    assert len(both) == len(own) + 3 * 3  # 31 frames: windows at 0, 10, 20 per episode
    assert set(both.episode[len(own) :]) == {len(own.files), len(own.files) + 1, len(own.files) + 2}


def test_the_runs_own_data_is_refused_as_held_out(dmc, tmp_path):
    model, data, _ = dmc
    with pytest.raises(UsageError, match="--held-out-data .*run's own dataset"):
        check_held_out((data,), data, model)
    copy = tmp_path / "copy"  # the same collection, copied elsewhere: the same episodes
    shutil.copytree(data, copy)
    with pytest.raises(UsageError, match="--held-out-data .*same --seed"):
        check_held_out((copy,), data, model)
    with pytest.raises(UsageError, match="--held-out-data .*no such folder"):
        check_held_out((tmp_path / "absent",), data, model)


def test_heads_record_their_held_out_data_and_are_scored_only_with_it(dmc, tmp_path):
    model, data, extra = dmc
    config = RewardTrainConfig(window=10, stride=10, steps=5)
    heads = tmp_path / "heads"
    summary = train_reward_heads(model, data, heads, config, [TASK], False, held_out=(extra,))
    facts = summary.tasks[TASK]
    assert facts.held_out_data == [str(extra.resolve())]
    meta = json.loads((heads / TASK / "head.json").read_text())["metadata"]
    assert meta["held_out_data"] == [str(extra.resolve())]
    run = model.run_dir
    with pytest.raises(UsageError, match="--held-out-data: the head .* trained with held-out"):
        evaluate_reward_prediction([run], data, heads=[heads], tasks=[TASK], progress=False)
    result = evaluate_reward_prediction(
        [run],
        data,
        heads=[heads],
        tasks=[TASK],
        held_out=(extra,),
        precision="fp32",
        progress=False,
    )
    scores = result.variants[0].results[0].tasks[TASK]
    assert scores.test_windows == facts.test_windows
    assert scores.normalized_mse == pytest.approx(facts.test_normalized_mse, rel=1e-5)


def test_the_cli_passes_held_out_data_and_names_the_flag(dmc, tmp_path, capsys):
    from keypoint_wm.cli.main import main as cli_main

    model, data, extra = dmc
    base = ["rewards", "train", "--run", str(model.run_dir), "--data", str(data), "--tasks",
            TASK, "--window", "10", "--stride", "10", "--steps", "3", "--device", "cpu",
            "--quiet"]  # fmt: skip
    assert cli_main([*base, "--out", str(tmp_path / "a"), "--held-out-data", str(data)]) == 2
    assert "--held-out-data" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    assert cli_main([*base, "--out", str(tmp_path / "b"), "--held-out-data", str(extra)]) == 0
    meta = json.loads((tmp_path / "b" / TASK / "head.json").read_text())["metadata"]
    assert meta["held_out_data"] == [str(extra.resolve())]

from __future__ import annotations

import dataclasses
import json

import pytest

from keypoint_wm.model import ModelConfig


def test_defaults_are_table_s1_basketball() -> None:
    cfg = ModelConfig()
    assert cfg.num_keypoints == 12
    assert cfg.separation_loss_scale == 0.1
    assert cfg.separation_loss_width == 0.02
    assert cfg.sparsity_loss_scale == 0.1
    assert cfg.keypoint_width == 1.5
    assert cfg.latent_size == 16
    assert cfg.kl_beta == 0.01
    assert cfg.prior_net_size == 16
    assert cfg.posterior_net_size == 128
    assert cfg.rnn_units == 512
    assert cfg.num_bom_samples == 50
    assert cfg.num_observed_steps == 8 and cfg.num_predicted_steps == 8
    assert cfg.scale_normalization == "max"
    assert cfg.heatmap_amplitude == "scale"
    assert cfg.num_halvings == 2 and cfg.feature_size == 36 and cfg.num_steps == 16


def test_json_round_trip() -> None:
    cfg = ModelConfig(num_keypoints=64, dynamics="rnn", action_size=6)
    text = json.dumps(dataclasses.asdict(cfg))
    assert ModelConfig.from_dict(json.loads(text)) == cfg


def test_from_dict_rejects_unknown_keys_by_name() -> None:
    with pytest.raises(ValueError, match="num_keypoint, typo_key"):
        ModelConfig.from_dict({"num_keypoint": 3, "typo_key": 1})


@pytest.mark.parametrize(
    "changes",
    [
        {"dynamics": "lstm"},
        {"representation": "pixels"},
        {"scale_normalization": "sum"},
        {"image_size": 48},
        {"num_keypoints": 0},
    ],
)
def test_invalid_values(changes: dict) -> None:
    with pytest.raises(ValueError):
        ModelConfig(**changes)


def test_replace() -> None:
    cfg = ModelConfig().replace(num_keypoints=5)
    assert cfg.num_keypoints == 5
    with pytest.raises(ValueError, match="nope"):
        ModelConfig().replace(nope=1)

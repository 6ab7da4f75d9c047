"""Presets: the paper's are Table S1 with none of our discovery fixes; CPU ones fit their budget."""

from __future__ import annotations

import pytest

from keypoint_wm.model.config import ModelConfig
from keypoint_wm.presets import PRESETS, get_preset

PAPER = ("basketball", "human36m", "dmcs")

# Table S1 (K, lambda_sep, sigma_sep, lambda_sparse, latent size, beta, prior net size).
TABLE_S1 = {
    "basketball": (12, 0.1, 0.02, 0.1, 16, 0.01, 16),
    "human36m": (48, 0.02, 0.002, 0.01, 16, 0.01, 4),
    "dmcs": (64, 0.1, 0.02, 5.0, 128, 3e-3, 16),
}


@pytest.mark.parametrize("name", PAPER)
def test_paper_presets_are_table_s1_without_the_discovery_fixes(name):
    config = get_preset(name).build()
    m = config.model
    got = (
        m.num_keypoints,
        m.separation_loss_scale,
        m.separation_loss_width,
        m.sparsity_loss_scale,
        m.latent_size,
        m.kl_beta,
        m.prior_net_size,
    )
    assert got == pytest.approx(TABLE_S1[name])
    assert m.num_bom_samples == 50 and m.heatmap_width == 16 and m.keypoint_width == 1.5
    default = ModelConfig()
    for knob in (
        "heatmap_amplitude",
        "heatmap_bias_init",
        "detector_coord_channels",
        "overlap_loss_scale",
        "concentration_loss_scale",
        "motion_prior",
    ):
        assert getattr(m, knob) == getattr(default, knob), knob
    assert config.train.motion_prior_scale == 0.0 and config.train.motion_prior_final == 0.0
    assert (config.train.steps, config.train.batch_size) == (100_000, 32)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_schedule_fits_the_preset_budget(name):
    train = get_preset(name).build().train
    assert train.kl_annealing_steps <= train.steps
    assert train.scheduled_sampling_steps <= train.steps
    assert train.motion_prior_steps <= train.steps
    assert train.lr_halving_steps < train.steps  # the rate halves at least once


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="basketball-cpu"):
        get_preset("basketbal")

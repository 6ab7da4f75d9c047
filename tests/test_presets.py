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


@pytest.mark.parametrize("name", PAPER)
def test_paper_presets_take_the_authors_sparsity_and_reconstructor_channels(name):
    model = get_preset(name).build().model
    assert model.sparsity_target == "heatmap_mean"
    assert model.reconstructor_channels == "per_level"


# The CPU presets' whole resolved configs, written out: a change to a paper preset (or to a
# default) that would reach a CPU preset fails here instead of changing it silently.
_CPU_MODEL_COMMON = {
    "image_size": 64,
    "num_encoder_filters": 16,
    "layers_per_scale": 1,
    "reconstructor_channels": "per_conv",
    "scale_normalization": "max",
    "heatmap_amplitude": "one",
    "heatmap_bias_init": -8.0,
    "detector_coord_channels": False,
    "image_loss_scale": 1.0,
    "separation_loss_steps": "observed",
    "sparsity_target": "scale",
    "weight_decay": 1e-4,
    "posterior_net_size": 128,
    "decoder_net_size": 128,
    "rnn_units": 512,
    "num_bom_samples": 10,
    "action_size": 0,
    "action_conditioned": False,
    "dynamics": "vrnn",
    "use_bom": True,
    "representation": "keypoints",
    "future_loss_trains_prior": False,
}
_CPU_TRAIN_COMMON = {
    "batch_size": 8,
    "learning_rate": 1e-3,
    "own_sample_prob_observed": 1.0,
    "own_sample_prob_predicted": 0.5,
    "keypoint_width_start": 0.0,
    "keypoint_width_steps": 0,
    "motion_prior_scale": 10.0,
    "grad_clip_norm": 10.0,
    "precision": "auto",
    "data_workers": 2,
    "test_fraction": 0.2,
    "validation_fraction": 0.1,
    "log_every": 20,
    "image_every": 500,
    "checkpoint_every": 100,
    "probe_every": 100,
}
_HUMAN36M_DMCS_TRAIN = {
    "steps": 6000,
    "lr_halving_steps": 1600,
    "kl_annealing_steps": 1000,
    "scheduled_sampling_steps": 4000,
    "motion_prior_steps": 600,
    "motion_prior_final": 0.0,
}
CPU_GOLDEN = {
    "basketball-cpu": {
        "model": {
            **_CPU_MODEL_COMMON,
            "num_keypoints": 12,
            "heatmap_width": 32,
            "keypoint_width": 3.0,
            "separation_loss_scale": 1.0,
            "separation_loss_width": 0.02,
            "overlap_loss_scale": 0.0,
            "concentration_loss_scale": 5.0,
            "motion_prior": "coverage",
            "sparsity_loss_scale": 0.1,
            "latent_size": 16,
            "prior_net_size": 16,
            "kl_beta": 0.01,
            "num_observed_steps": 4,
            "num_predicted_steps": 4,
        },
        "train": {
            **_CPU_TRAIN_COMMON,
            "steps": 5500,
            "lr_halving_steps": 3000,
            "kl_annealing_steps": 2000,
            "scheduled_sampling_steps": 5500,
            "motion_prior_steps": 1000,
            "motion_prior_final": 3.0,
            "reference_frame": "first",
        },
    },
    "human36m-cpu": {
        "model": {
            **_CPU_MODEL_COMMON,
            "num_keypoints": 24,
            "heatmap_width": 16,
            "keypoint_width": 1.5,
            "separation_loss_scale": 0.02,
            "separation_loss_width": 0.002,
            "overlap_loss_scale": 3.0,
            "concentration_loss_scale": 0.0,
            "motion_prior": "per_keypoint",
            "sparsity_loss_scale": 0.01,
            "latent_size": 16,
            "prior_net_size": 4,
            "kl_beta": 0.01,
            "num_observed_steps": 8,
            "num_predicted_steps": 8,
        },
        "train": {**_CPU_TRAIN_COMMON, **_HUMAN36M_DMCS_TRAIN, "reference_frame": "first"},
    },
    "dmcs-cpu": {
        "model": {
            **_CPU_MODEL_COMMON,
            "action_conditioned": True,
            "num_keypoints": 32,
            "heatmap_width": 16,
            "keypoint_width": 1.5,
            "separation_loss_scale": 0.1,
            "separation_loss_width": 0.02,
            "overlap_loss_scale": 3.0,
            "concentration_loss_scale": 0.0,
            "motion_prior": "per_keypoint",
            "sparsity_loss_scale": 5.0,
            "latent_size": 128,
            "prior_net_size": 16,
            "kl_beta": 3e-3,
            "num_observed_steps": 4,
            "num_predicted_steps": 4,
        },
        "train": {
            **_CPU_TRAIN_COMMON,
            **_HUMAN36M_DMCS_TRAIN,
            "reference_frame": "other_episode",
        },
    },
}


@pytest.mark.parametrize("name", sorted(CPU_GOLDEN))
def test_cpu_presets_resolve_to_their_pinned_configs(name):
    resolved = get_preset(name).build().to_dict()
    expected = {"preset": name, "seed": 0, **CPU_GOLDEN[name], "data": {}}
    assert resolved == expected

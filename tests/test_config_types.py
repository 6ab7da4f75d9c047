"""`--set` and `--config` values are checked against the config's field types, by name."""

from __future__ import annotations

import pytest

from keypoint_wm import config as config_module
from keypoint_wm.config import coerce_setting, load_config_file, parse_set_arguments
from keypoint_wm.errors import UsageError
from keypoint_wm.presets import PRESETS, get_preset


def overridden(*items: str):
    return get_preset("basketball-cpu").build().with_overrides(parse_set_arguments(list(items)))


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("train.steps=abc", "--set train.steps=abc: expected an integer (train.steps is int)"),
        ("model.num_keypoints=2.5", "--set model.num_keypoints=2.5: expected an integer"),
        ("train.learning_rate=fast", "--set train.learning_rate=fast: expected a number"),
        ("model.use_bom=maybe", "--set model.use_bom=maybe: expected true or false"),
        ("train.precision=3", "--set train.precision=3: expected a string"),
        ("num_keypoints=[1, 2]", "--set num_keypoints=[1, 2]: expected an integer"),
        ("seed=abc", "--set seed=abc: expected an integer (seed is int)"),
    ],
)
def test_a_value_of_the_wrong_type_is_a_usage_error_naming_key_value_and_type(item, message):
    with pytest.raises(UsageError) as caught:
        overridden(item)
    assert str(caught.value).startswith(message)
    assert caught.value.exit_code == 2


def test_values_yaml_reads_loosely_become_the_field_type():
    config = overridden(
        "train.learning_rate=1e-3",  # YAML 1.1 reads this as a string
        "train.steps=1e5",
        "model.keypoint_width=2",
        "model.use_bom=false",
        "batch_size=4.0",
        "seed=7",
    )
    assert config.train.learning_rate == 1e-3 and isinstance(config.train.learning_rate, float)
    assert config.train.steps == 100_000 and isinstance(config.train.steps, int)
    assert config.model.keypoint_width == 2.0 and isinstance(config.model.keypoint_width, float)
    assert config.model.use_bom is False and config.train.batch_size == 4 and config.seed == 7


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_value_is_already_valid(name):
    built = get_preset(name).build().to_dict()
    for section in ("model", "train"):
        for key, value in built[section].items():
            coerced = coerce_setting(f"{section}.{key}", value)
            assert coerced == value and type(coerced) is type(value), (section, key)


def test_an_optional_setting_accepts_null_and_none(monkeypatch):
    monkeypatch.setattr(config_module, "_setting_type", lambda dotted: int | None)
    assert coerce_setting("train.x", None) is None
    assert coerce_setting("train.x", "None") is None and coerce_setting("train.x", "null") is None
    assert coerce_setting("train.x", 3) == 3
    with pytest.raises(
        UsageError, match=r"train\.x=nope: expected an integer \(train\.x is int or null\)"
    ):
        coerce_setting("train.x", "nope")


def test_a_config_file_value_of_the_wrong_type_is_refused(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  steps: many\n")
    with pytest.raises(
        UsageError, match=r"--config .*run\.yaml: train\.steps=many: expected an int"
    ):
        get_preset("basketball-cpu").build().with_overrides(load_config_file(path))


def test_set_values_are_checked_when_parsed_even_if_a_flag_replaces_them_later():
    with pytest.raises(UsageError, match=r"--set train\.steps=abc: expected an integer"):
        parse_set_arguments(["train.steps=abc"])
    assert parse_set_arguments(["steps=10", "data.note=[x"]) == {"steps": 10, "data.note": "[x"}


@pytest.mark.parametrize("item", ["train.learning_rate=-1", "train.learning_rate=0"])
def test_a_learning_rate_that_cannot_train_is_refused_before_a_run_folder_exists(item):
    with pytest.raises(UsageError, match="train.learning_rate must be > 0"):
        overridden(item)


def test_action_conditioning_is_a_model_setting_of_set_and_config_files(tmp_path):
    dmcs = get_preset("dmcs-cpu").build()
    assert (
        dmcs.model.action_conditioned
        and not get_preset("basketball-cpu").build().model.action_conditioned
    )
    off = dmcs.with_overrides(parse_set_arguments(["model.action_conditioned=false"]))
    assert off.model.action_conditioned is False
    path = tmp_path / "on.yaml"
    path.write_text("model:\n  action_conditioned: true\n")
    on = get_preset("basketball-cpu").build().with_overrides(load_config_file(path))
    assert on.model.action_conditioned is True
    with pytest.raises(UsageError, match="model.action_conditioned"):
        parse_set_arguments(["model.action_conditioned=1"])

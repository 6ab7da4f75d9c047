"""Mean and 95% interval over seeds (keypoint_wm/evaluation/seeds.py), on hand-computed cases."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest

from keypoint_wm.errors import UsageError
from keypoint_wm.evaluation.seeds import (
    OverSeeds,
    SeedMismatch,
    aggregate,
    check_one_variant,
    plus_minus,
    variants_json,
)

T_975 = {1: 12.706, 2: 4.303, 3: 3.182}  # Student's t, 97.5% quantile, by degrees of freedom


def test_numbers_and_lists_become_the_mean_and_the_t_interval_over_runs():
    runs = [
        {"error": 0.25, "r2": [0.5, 1.0], "per_step": {"model": [1.0, None]}},
        {"error": 0.75, "r2": [0.9, 1.0], "per_step": {"model": [3.0, None]}},
    ]
    mean, half = aggregate(runs)
    # Two runs: mean, sample std (n - 1) and t with 1 degree of freedom, by hand.
    assert mean["error"] == pytest.approx(0.5)
    assert half["error"] == pytest.approx(12.706 * 0.3535533906 / 2**0.5, rel=1e-6)  # 3.1765
    assert mean["r2"] == pytest.approx([0.7, 1.0])
    assert half["r2"][0] == pytest.approx(12.706 * 0.2828427125 / 2**0.5, rel=1e-6)  # 2.5412
    assert half["r2"][1] == 0.0  # equal in every run
    assert mean["per_step"]["model"] == [2.0, None] and half["per_step"]["model"][1] is None


def test_three_runs_use_two_degrees_of_freedom():
    mean, half = aggregate([{"psnr": 20.0}, {"psnr": 22.0}, {"psnr": 27.0}])
    # mean 23, deviations -3, -1, 4: s^2 = (9 + 1 + 16) / 2 = 13.
    assert mean["psnr"] == pytest.approx(23.0)
    assert half["psnr"] == pytest.approx(T_975[2] * 13**0.5 / 3**0.5, rel=1e-6)  # 8.9573


def test_settings_text_and_flags_stay_and_differing_text_lists_the_runs():
    runs = [
        {"samples": 50, "split": "hash", "ground_truth": True, "run": "out/seed_0", "fvd": None},
        {"samples": 50, "split": "hash", "ground_truth": True, "run": "out/seed_1", "fvd": None},
    ]
    mean, half = aggregate(runs)
    assert mean == {
        "samples": 50,
        "split": "hash",
        "ground_truth": True,
        "run": ["out/seed_0", "out/seed_1"],
        "fvd": None,
    }
    assert type(mean["samples"]) is int  # an equal integer is not turned into a float
    assert half == {"samples": 0.0, "split": None, "ground_truth": None, "run": None, "fvd": None}


def test_a_number_missing_in_some_runs_is_averaged_over_the_others():
    mean, half = aggregate([{"x": 1.0}, {"x": None}, {"x": 3.0}])
    assert mean["x"] == pytest.approx(2.0)
    assert half["x"] == pytest.approx(T_975[1] * 2**0.5 / 2**0.5)
    mean, half = aggregate([{"x": 1.0}, {"x": None}])
    assert mean["x"] == 1.0 and half["x"] is None  # one value: no interval


def test_one_run_is_returned_exactly_with_no_interval():
    run = {"error": 0.1 + 0.2, "nested": {"values": [1, 2.5, None]}}
    mean, half = aggregate([run])
    assert mean is run and half is None


@pytest.mark.parametrize(
    ("first", "second", "where"),
    [
        ({"a": 1, "b": 2}, {"a": 1}, "the top level"),
        ({"a": {"b": [1, 2]}}, {"a": {"b": [1, 2, 3]}}, "'a.b'"),
        ({"a": [{"b": 1}]}, {"a": [{"b": [1]}]}, "'a[0].b'"),
    ],
)
def test_results_of_different_layouts_are_not_seeds_of_one_variant(first, second, where):
    with pytest.raises(SeedMismatch, match=re.escape(f"differ at {where}")):
        aggregate([first, second])
    assert issubclass(SeedMismatch, UsageError)  # the user's to fix (exit 2)


@dataclass(frozen=True)
class _Figures:
    error: float
    windows: int

    def to_json(self) -> dict[str, Any]:
        return {"error": self.error, "windows": self.windows}


def test_over_seeds_json_is_the_mean_plus_seed_ci95_and_per_run():
    seeds = OverSeeds(("out/seed_0", "out/seed_1"), (_Figures(1.0, 8), _Figures(2.0, 8)))
    payload = seeds.to_json()
    assert payload["error"] == 1.5 and payload["windows"] == 8
    assert payload["run"] == ["out/seed_0", "out/seed_1"]
    assert payload["seed_ci95"]["error"] == pytest.approx(T_975[1] * 0.5**0.5 / 2**0.5)
    assert payload["per_run"] == [
        {"error": 1.0, "windows": 8, "run": "out/seed_0"},
        {"error": 2.0, "windows": 8, "run": "out/seed_1"},
    ]
    assert seeds.at("error") == (1.5, payload["seed_ci95"]["error"])
    json.dumps(payload)  # JSON-ready

    one = OverSeeds(("runs/bb",), (_Figures(0.3, 8),), {"data": "data/bb"})
    today = {"error": 0.3, "windows": 8, "run": "runs/bb", "data": "data/bb"}
    assert one.to_json() == {**today, "seed_ci95": None, "per_run": [today]}
    assert list(one.to_json()) == [*today, "seed_ci95", "per_run"]  # today's keys first


def test_plus_minus_shows_the_interval_only_where_there_is_one():
    assert plus_minus(0.12345, 0.01) == "0.1235 ± 0.0100"
    assert plus_minus(0.12345, None) == "0.1235"
    assert plus_minus(None, 0.5) == "-"


def test_side_by_side_variants_are_each_written_as_one_variant_is():
    two = OverSeeds(("out/seed_0", "out/seed_1"), (_Figures(1.0, 8), _Figures(2.0, 8)))
    one = OverSeeds(("runs/rnn",), (_Figures(0.3, 8),))
    payload = variants_json([("vrnn", two), ("rnn", one)])
    assert list(payload) == ["vrnn", "rnn"]
    assert payload == {"vrnn": two.to_json(), "rnn": one.to_json()}
    assert payload["rnn"]["seed_ci95"] is None and len(payload["vrnn"]["per_run"]) == 2
    with pytest.raises(ValueError, match="two variants named 'rnn'"):
        variants_json([("rnn", two), ("rnn", one)])


def test_runs_with_different_models_are_refused_as_seeds_of_one_variant():
    vrnn = {"dynamics": "vrnn", "num_keypoints": 6}
    check_one_variant(["a", "b"], [vrnn, dict(vrnn)])  # equal: fine
    with pytest.raises(UsageError, match=r"--run a and --run c .* model\.dynamics differ"):
        check_one_variant(["a", "b", "c"], [vrnn, vrnn, {**vrnn, "dynamics": "rnn"}])

"""Runs grouped into labelled variants (keypoint_wm/run_groups.py), the one reading of
``--run`` and ``--label`` behind ``evaluate compare`` and ``rewards evaluate``, on run
directories that hold only a ``config.json``."""

from __future__ import annotations

from pathlib import Path

import pytest

from keypoint_wm.errors import UsageError
from keypoint_wm.run_groups import Seed, Variant, group_runs, run_labels, seed_runs


def make_run(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    return path


def make_seeds(out: Path, *seeds: int) -> Path:
    for seed in seeds:
        make_run(out / f"seed_{seed}")
    return out


def test_a_seed_folder_stands_for_its_runs_in_seed_order(tmp_path):
    run = make_run(tmp_path / "run")
    assert seed_runs(run) == [run]
    out = make_seeds(tmp_path / "out", 10, 9, 11)
    (out / "seed_x").mkdir()  # not a replica: ignored
    (out / "seed_12").mkdir()  # no config.json (not trained yet): ignored
    assert seed_runs(out) == [out / "seed_9", out / "seed_10", out / "seed_11"]
    with pytest.raises(UsageError, match="--run .* nor a folder of seed_<s>/ runs"):
        seed_runs(tmp_path / "missing")
    with pytest.raises(UsageError, match="^RUN "):
        seed_runs(out / "seed_x", flag="RUN")


def test_seed_runs_is_still_importable_from_the_seeds_module():
    from keypoint_wm.evaluation import seeds

    assert seeds.seed_runs is seed_runs


def test_runs_sharing_a_label_are_the_seeds_of_one_variant_in_first_appearance_order(tmp_path):
    a, b, c = (make_run(tmp_path / name) for name in ("a", "b", "c"))
    out = make_seeds(tmp_path / "out", 1, 0)
    variants = group_runs([a, c, out, b], ["vrnn", "rnn", "cnn", "vrnn"])
    assert [v.name for v in variants] == ["vrnn", "rnn", "cnn"]
    assert all(v.labelled for v in variants)
    assert [v.runs for v in variants] == [[a, b], [c], [out / "seed_0", out / "seed_1"]]
    # Each seed knows the --run it came from: commands attach their per-run options to it.
    assert variants[0].seeds == (Seed(a, 0, a), Seed(b, 3, b))
    assert variants[2].seeds[1] == Seed(out / "seed_1", 2, out)
    assert "both labelled 'vrnn'; label them apart" in variants[0].seed_hint


def test_unlabelled_runs_are_each_their_own_variant_named_by_directory(tmp_path):
    run = make_run(tmp_path / "x" / "run")
    other = make_run(tmp_path / "y" / "run")  # the same name: told apart by the parent
    out = make_seeds(tmp_path / "bb5", 3, 4)
    variants = group_runs([run, other, out])
    assert [v.name for v in variants] == ["x/run", "y/run", "bb5"]
    assert not any(v.labelled for v in variants)
    assert variants[2] == Variant(
        "bb5", False, (Seed(out / "seed_3", 2, out), Seed(out / "seed_4", 2, out))
    )
    assert variants[2].seed_hint == f" (seed runs of {out})"
    assert run_labels([run, other]) == ["x/run", "y/run"]


def test_a_run_given_twice_in_a_variant_is_refused(tmp_path):
    run, other = make_run(tmp_path / "a"), make_run(tmp_path / "b")
    out = make_seeds(tmp_path / "out", 0, 1)
    with pytest.raises(UsageError, match=r"^--label x: a run is given twice"):
        group_runs([run, other, run], ["x", "y", "x"])
    with pytest.raises(UsageError, match=r"^--label x: a run is given twice"):
        group_runs([out, out / "seed_1"], ["x", "x"])  # once in its folder, once alone
    with pytest.raises(UsageError, match=r"^--run: runs must be distinct .* --label"):
        group_runs([run, run])
    # In two variants, labelled apart, one run is fine (rewards: two sets of heads).
    assert [v.runs for v in group_runs([run, run], ["hidden", "keypoints"])] == [[run], [run]]


def test_bad_runs_and_labels_are_refused_naming_the_flag(tmp_path):
    run, other = make_run(tmp_path / "a"), make_run(tmp_path / "b")
    with pytest.raises(UsageError, match=r"^--label: give one label per run \(2\), got 1$"):
        group_runs([run, other], ["x"])
    with pytest.raises(UsageError, match=r"^--run: give at least one run directory$"):
        group_runs([])
    with pytest.raises(UsageError, match=r"^RUN .* is not a run directory"):
        group_runs([run, tmp_path / "missing"], flag="RUN")

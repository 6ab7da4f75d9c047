"""The probe's curve over training time: CSV rows and the picture beside them."""

from __future__ import annotations

import numpy as np
import pytest

from keypoint_wm.evaluation.probe import ProbeLog, read_probe_curve


def test_probe_log_writes_csv_and_plot_and_keeps_the_last_row_of_a_repeated_step(tmp_path):
    log = ProbeLog(tmp_path)
    log.append(100, 60.0, np.array([0.1, 0.5]))
    log.append(200, 120.0, np.array([0.2, 0.9]))
    log.append(200, 125.0, np.array([0.3, 0.95]))  # resumed from step 100, probed again
    steps, seconds, r2 = read_probe_curve(tmp_path / "probe.csv")
    assert steps.tolist() == [100, 200]
    assert seconds.tolist() == [60.0, 125.0]
    np.testing.assert_allclose(r2, [[0.1, 0.5], [0.3, 0.95]])
    png = (tmp_path / "probe.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_probe_without_validation_episodes_is_skipped_with_what_to_do(tmp_path):
    from keypoint_wm.data.episodes import Episode, save_episode
    from keypoint_wm.data.sequences import is_test_file, is_validation_file
    from keypoint_wm.evaluation.probe import ProbeData

    names = [f"e{i}.npz" for i in range(50) if not is_test_file(f"e{i}.npz", 0.2)
             and not is_validation_file(f"e{i}.npz", 0.1)][:2]  # fmt: skip
    for name in names:  # every file falls in the train split
        image = np.zeros((8, 8, 8, 3), np.uint8)
        positions = np.zeros((8, 1, 2), np.float32)
        save_episode(tmp_path / name, Episode(image, np.zeros((8, 0), np.float32),
                                              np.zeros(8, np.float32), positions))  # fmt: skip
    match = r"probe off.*no validation episode files.*validation_fraction.*probe_every=0"
    with pytest.warns(UserWarning, match=match):
        assert ProbeData.from_dataset(tmp_path, 0.2, 0.1) is None

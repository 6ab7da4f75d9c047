"""The probe's curve over training time: CSV rows and the picture beside them."""

from __future__ import annotations

import numpy as np

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

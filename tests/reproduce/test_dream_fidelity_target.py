"""``reproduce dream-fidelity``: the arm with the reward table's held-out heads."""

from __future__ import annotations

from itertools import pairwise

from keypoint_wm.reproduce import dream_fidelity, rewards
from keypoint_wm.reproduce.dmcs import CHOSEN


def _flags(argv: tuple[str, ...]) -> dict[str, str]:
    return {a: b for a, b in pairwise(argv) if a.startswith("--")}


def test_held_out_heads_are_the_reward_tables_heads_so_either_protocol_keeps_them():
    fidelity = dream_fidelity.protocol()
    table = rewards.protocol()
    for seed in (0, 1, 2):
        heads = _flags(fidelity.unit(f"heads-heldout-{CHOSEN}-seed{seed}").argv)
        # the table's unit scores both inputs; its last --heads and --inputs: h + frame
        scored = _flags(table.unit(f"rewards-{CHOSEN}-seed{seed}").argv)
        assert heads["--out"] == scored["--heads"]
        for flag in ("--run", "--data", "--held-out-data", "--stride", "--inputs"):
            assert heads[flag] == scored[flag], flag
        assert set(heads) - {"--out", "--quiet"} == set(scored) - {
            "--heads", "--label", "--json", "--plot", "--quiet", "--train-missing"
        }  # fmt: skip
    assert (
        fidelity.unit("held-out-data").digest == table.unit("held-out-data").digest
    )  # one collection in a shared --out


def test_held_out_arm_reads_those_heads_from_more_initial_states():
    fidelity = dream_fidelity.protocol()
    unit = fidelity.unit(f"fidelity-heldout-{CHOSEN}-seed0")
    flags = _flags(unit.argv)
    assert flags["--heads"] == rewards.held_out_heads("hidden+keypoints")
    assert flags["--episodes"] == str(dream_fidelity.HELD_OUT_EPISODES)
    assert unit.needs == (f"heads-heldout-{CHOSEN}-seed0",)
    own = fidelity.unit(f"fidelity-{CHOSEN}-seed0")  # the recorded arm's command is unchanged
    assert "--episodes" not in own.argv
    assert _flags(own.argv)["--heads"] == "rewards_hidden+keypoints"

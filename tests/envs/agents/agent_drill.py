"""``keypoint-wm evaluate agents`` run as a user runs it, stopped on cue: the resume drills of
tests/envs/agents/test_resume.py.

    python agent_drill.py PLAN ARGS...

ARGS are the command's own, after ``keypoint-wm``; the process exits with its status. PLAN is
a JSON object, every key optional:

- ``"unit"``: the unit to stop, as its checkpoint folder names it (``"state-seed0"``);
- ``"after"``: stop it once this process has written that many of its checkpoints (0: as
  it starts, before it is made);
- ``"signal"``: ``"SIGKILL"`` (the default: it dies at once), ``"SIGTERM"`` or ``"SIGINT"``
  (sent to itself: the command saves and stops on its own);
- ``"writing"``: die while that checkpoint is being written: its files are complete in the
  temporary folder, not yet renamed into place;
- ``"digests"``: a file to which every evaluation of a trained agent appends one JSON line,
  ``{"unit", "steps", "digest"}``: a hash of the agent's weights, optimiser moments and the
  global RNG states as it is scored. Two runs that agree there agree bitwise, which returns
  alone cannot show (SB3's ``Monitor`` rounds them to 6 decimals).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")


def agent_digest(agent: Any) -> str:
    """A hash of ``agent``'s parameters and optimiser states and of torch's and NumPy's
    global generators."""
    import numpy as np
    import torch

    digest = hashlib.sha256()

    def feed(value: Any) -> None:
        if isinstance(value, dict):
            for key in sorted(value, key=repr):
                digest.update(repr(key).encode())
                feed(value[key])
        elif isinstance(value, (list, tuple)):
            for item in value:
                feed(item)
        elif isinstance(value, torch.Tensor):
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        else:
            digest.update(repr(value).encode())

    feed(agent.get_parameters())
    digest.update(torch.get_rng_state().numpy().tobytes())
    numpy_state = np.random.get_state(legacy=False)  # noqa: NPY002
    digest.update(numpy_state["state"]["key"].tobytes())
    feed([numpy_state["state"]["pos"], numpy_state["has_gauss"], numpy_state["gauss"]])
    return digest.hexdigest()


def main() -> int:
    plan: dict[str, Any] = json.loads(sys.argv[1])
    from keypoint_wm.cli.main import main as command
    from keypoint_wm.envs.agents import checkpoints, runner

    unit_name = plan.get("unit")
    signum = getattr(signal, plan.get("signal", "SIGKILL"))
    written = 0
    current = [""]

    run_unit = runner.run_unit

    def tracked_run_unit(unit: Any, *args: Any, **kwargs: Any) -> Any:
        current[0] = f"{unit.variant}-seed{unit.seed}"
        if current[0] == unit_name and plan.get("after") == 0:
            os.kill(os.getpid(), signum)
        return run_unit(unit, *args, **kwargs)

    runner.run_unit = tracked_run_unit  # type: ignore[assignment]

    if plan.get("digests"):
        digests = Path(plan["digests"])
        episode_returns = runner.episode_returns

        def recorded(policy: Any, venv: Any, episodes: int, seed: int) -> list[float]:
            if hasattr(policy, "get_parameters"):
                line = {"unit": current[0], "steps": int(policy.num_timesteps)}
                line["digest"] = agent_digest(policy)
                with open(digests, "a") as f:
                    f.write(json.dumps(line) + "\n")
            return episode_returns(policy, venv, episodes, seed)

        runner.episode_returns = recorded  # type: ignore[assignment]

    write_checkpoint_dir = checkpoints.write_checkpoint_dir

    def drilled(folder: Path, step: int, write: Callable[[Path], None], keep: int = 2) -> Path:
        nonlocal written
        ours = Path(folder).name == f"{unit_name}.partial"
        last = ours and written + 1 == plan.get("after")

        def write_then_die(temporary: Path) -> None:
            write(temporary)
            os.kill(os.getpid(), signal.SIGKILL)

        dying = last and plan.get("writing")
        path = write_checkpoint_dir(folder, step, write_then_die if dying else write, keep=keep)
        if ours:
            written += 1
            if last:
                os.kill(os.getpid(), signum)
        return path

    checkpoints.write_checkpoint_dir = drilled  # type: ignore[assignment]
    return command(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())

"""Check that the fast renderer draws what the suite draws, and how much faster it is.

:func:`compare_to_suite_default` steps two copies of a task with the same seed and the same
random actions; one renders with ``physics.render`` and the suite's own settings, the other
with :class:`~keypoint_wm.envs.rendering.PixelRenderer` (the renderer of
:class:`~keypoint_wm.envs.dmc.DMCPixelEnv`). Only the render calls are timed.

Run ``python -m keypoint_wm.envs.render_check [--shadow-sizes 2048,512,256,128] [--json PATH]``
for the table over the paper's six tasks (``"ratios"`` in the JSON: our frames/s over the
suite default's, per task and setting).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, NamedTuple

import numpy as np

from keypoint_wm.envs.gl import dm_control_suite
from keypoint_wm.envs.rendering import PixelRenderer, default_shadow_size

__all__ = ["RenderComparison", "compare_to_suite_default", "main"]


class RenderComparison(NamedTuple):
    """Result of :func:`compare_to_suite_default`.

    ``mean_abs_diff``: mean absolute difference of all pixels and channels, on 0-255.
    ``fps_default`` / ``fps_ours``: rendered frames per second (render calls only).
    """

    mean_abs_diff: float
    fps_default: float
    fps_ours: float


def compare_to_suite_default(
    domain: str,
    task: str,
    frames: int = 50,
    *,
    size: int = 64,
    camera_id: int = 0,
    seed: int = 0,
    **renderer_kwargs: Any,
) -> RenderComparison:
    """Render ``frames`` random-action frames both ways and compare them.

    Args:
        domain, task: a suite task.
        frames: number of frames (one per control step, after the reset frame).
        size: square image size.
        camera_id: fixed camera index.
        seed: seeds the task and the uniform random actions.
        renderer_kwargs: passed to :class:`PixelRenderer`, e.g. ``shadow_size=512``.

    Returns:
        ``(mean_abs_diff, fps_default, fps_ours)``.
    """
    suite = dm_control_suite()
    reference = suite.load(domain, task, task_kwargs={"random": seed})
    ours = suite.load(domain, task, task_kwargs={"random": seed})
    renderer = PixelRenderer(ours.physics, size, size, camera_id, **renderer_kwargs)
    reference.reset()
    ours.reset()
    spec = reference.action_spec()
    rng = np.random.RandomState(seed)

    def render_reference() -> np.ndarray:
        return reference.physics.render(size, size, camera_id=camera_id)

    # The first render of each creates its GL context; keep that out of the timing.
    render_reference()
    renderer.render()
    total_diff = 0.0
    seconds_default = seconds_ours = 0.0
    for _ in range(frames):
        action = rng.uniform(spec.minimum, spec.maximum).astype(spec.dtype)
        reference.step(action)
        ours.step(action)
        start = time.perf_counter()
        expected = render_reference()
        middle = time.perf_counter()
        actual = renderer.render()
        end = time.perf_counter()
        seconds_default += middle - start
        seconds_ours += end - middle
        total_diff += float(np.abs(actual.astype(np.float64) - expected).mean())
    renderer.close()
    reference.physics.free()
    ours.physics.free()
    return RenderComparison(
        mean_abs_diff=total_diff / frames,
        fps_default=frames / seconds_default,
        fps_ours=frames / seconds_ours,
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Print a table of frames/s and mean absolute difference per task and shadow size."""
    from keypoint_wm.envs.registration import PAPER_TASKS, parse_task_name

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(PAPER_TASKS))
    parser.add_argument(
        "--shadow-sizes",
        default="auto",
        help="comma-separated shadow map sizes; 'auto' is the environments' default",
    )
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args(argv)

    settings = [
        default_shadow_size(args.size, args.size) if text == "auto" else int(text)
        for text in args.shadow_sizes.split(",")
    ]
    rows: list[dict[str, Any]] = []
    ratios: dict[str, float] = {}
    print(f"{'task':<20} {'shadow':>6} {'fps suite':>10} {'fps ours':>9} {'ratio':>6} {'diff':>7}")
    for name in args.tasks.split(","):
        domain, task = parse_task_name(name)
        for shadow_size in settings:
            result = compare_to_suite_default(
                domain,
                task,
                args.frames,
                size=args.size,
                seed=args.seed,
                shadow_size=shadow_size,
            )
            ratio = result.fps_ours / result.fps_default
            ratios[f"{name}/shadow{shadow_size}"] = ratio
            rows.append({"task": name, "shadow_size": shadow_size, **result._asdict()})
            print(
                f"{name:<20} {shadow_size:>6} {result.fps_default:>10.1f} "
                f"{result.fps_ours:>9.1f} {ratio:>6.2f} {result.mean_abs_diff:>7.4f}",
                flush=True,
            )
    print("ratio = our frames/s over physics.render with the suite's settings (bigger is better)")
    report = {"size": args.size, "frames": args.frames, "rows": rows, "ratios": ratios}
    if args.json_path:
        with open(args.json_path, "w") as handle:
            json.dump(report, handle, indent=2)
    return report


if __name__ == "__main__":
    main()

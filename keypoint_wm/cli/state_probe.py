"""``keypoint-wm evaluate state-probe``: a ridge probe from the filtered latent to the physics
state, what the latent knows about it.

Registered under ``evaluate`` by :func:`register`; the handler imports the evaluation
(:mod:`keypoint_wm.evaluation.state_probe`) only when it runs.
"""

from __future__ import annotations

import argparse

from keypoint_wm.cli.common import check_json_path, positive_int, write_json
from keypoint_wm.cli.evaluate_common import add_common, over_seeds, write_plot
from keypoint_wm.data.state_layout import ANGLE_TARGETS
from keypoint_wm.latent_features import FEATURE_CHOICES


def run_state_probe(args: argparse.Namespace) -> int:
    """Ridge probe from the filtered latent to the physics state; table, plot, JSON."""
    from keypoint_wm.evaluation.state_probe import StateProbeConfig, evaluate_state_probe
    from keypoint_wm.evaluation.state_probe_report import format_state_probe, plot_state_probe

    tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip()) if args.tasks else None
    config = StateProbeConfig(
        features=args.features,
        test_fraction=args.test_fraction,
        max_episodes=args.max_episodes,
        burn_in=args.burn_in,
        tasks=tasks,
        untrained=not args.no_untrained_baseline,
        angles=args.angles,
    )
    check_json_path(args.gif, flag="--gif")
    gifs: list[str] = []

    def evaluate(model: object) -> object:
        result = evaluate_state_probe(model, args.data, config, not args.quiet)
        if args.gif and not gifs:  # the first run's keypoints on the test episodes
            from keypoint_wm.evaluation.keypoint_gif import write_keypoint_gif

            validation = result.settings["validation_fraction"]
            path = write_keypoint_gif(
                model, args.data, args.gif, args.test_fraction, validation, tasks
            )
            gifs.append(str(path))
        return result

    summary = over_seeds(args, evaluate)
    print(format_state_probe(summary))
    write_json(args.json, summary.to_json())
    write_plot(args, "state_probe", lambda path: plot_state_probe(summary, path))
    if gifs and not args.quiet:
        print(f"keypoints on the first test episode of each task: {gifs[0]}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``state-probe`` to ``keypoint-wm evaluate``'s sub-commands."""
    s = sub.add_parser(
        "state-probe",
        help="ridge probe from the filtered latent to the physics state: what the latent knows",
        description="Fit a ridge regression from the model's filtered latent at frame t (the "
        "keypoints of frame t, the GRU state h_{t-1}, or both) to the data's physics state at "
        "frame t on training-split episodes, choose its strength on validation episodes, and "
        "report test R^2 per task and observation key, positions and velocities apart, beside "
        "the same probe on an untrained model of the same config.",
    )
    add_common(s, precision="fp32")
    s.add_argument(
        "--features",
        choices=FEATURE_CHOICES,
        default="both",
        help="what the probe reads: keypoints (CNN-VRNN: its per-frame features), hidden "
        "(the GRU state) or both (default, what the latent wrappers observe)",
    )
    s.add_argument("--tasks", help="comma-separated tasks (default: every task with a state)")
    s.add_argument(
        "--max-episodes",
        type=positive_int("--max-episodes"),
        default=40,
        help="at most this many episodes per task and split (default 40)",
    )
    s.add_argument(
        "--burn-in",
        type=int,
        default=1,
        help="frames left out at each episode's start (default 1: frame 0 shows no motion)",
    )
    s.add_argument(
        "--angles",
        choices=ANGLE_TARGETS,
        default="sincos",
        help="raw hinge angles in the state (reacher's position) are scored through their "
        "cosines and sines (sincos, default; an image shows theta and theta + 2 pi alike) or "
        "as stored (raw)",
    )
    s.add_argument(
        "--no-untrained-baseline",
        action="store_true",
        help="skip the floor: the same probe on an untrained model of the same config",
    )
    s.add_argument(
        "--plot", help="PNG of R^2 per task (default: beside --json, or RUN/state_probe.png)"
    )
    s.add_argument(
        "--gif",
        help="also write a GIF of the first run's keypoints on the first test episode of each "
        "task, the tasks side by side (Struct-VRNN runs)",
    )
    s.set_defaults(handler=run_state_probe)

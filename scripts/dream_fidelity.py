"""Does the world model's imagination rank policies as the real task does?

    python3 scripts/dream_fidelity.py --run RUN --heads RUN/rewards_hidden+keypoints \\
        --task cartpole-balance [--horizon 30] [--seeds 6]

For each scripted policy (zero, full +1, full -1, uniform random, a sine; on cartpole also a
hand-tuned PD controller on the true pole angle and its sign-flipped twin) it rolls the REAL
task for ``context`` + ``horizon`` agent steps from its initial states, at the run's frame
size and action repeat. Then, from the same first ``context`` frames and with the same
actions, it lets the model

- FILTER the real frames (the posterior, as the latent wrapper does),
- IMAGINE the rest from its prior (sampled, and following the prior's mean),

with the reward head predicting each frame's reward. It prints each policy's return over
the horizon: real, filtered, imagined; then the correlation of imagined and real returns
across all rollouts. A dream agent can only learn what the imagined column ranks right.
A development tool (docs/measurements.md, "the dream policy").
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import torch

import keypoint_wm
from keypoint_wm.envs.dmc import DMCPixelEnv
from keypoint_wm.envs.latent.online import LatentFilter
from keypoint_wm.envs.latent.wrapper import training_action_repeat
from keypoint_wm.envs.registration import parse_task_name
from keypoint_wm.rewards.head import load_reward_head


def scripted_policies(task: str, size: int) -> dict:
    """Policies ``(env, t, rng) -> action`` in the env's [-1, 1] units."""

    def const(value: float):
        return lambda env, t, rng: np.full(size, value, np.float32)

    policies = {
        "zero": const(0.0),
        "plus": const(1.0),
        "minus": const(-1.0),
        "random": lambda env, t, rng: rng.uniform(-1, 1, size).astype(np.float32),
        "sine": lambda env, t, rng: np.full(size, np.sin(t / 4.0), np.float32),
    }
    if task.startswith("cartpole-"):

        def pd(sign: float):
            def act(env, t, rng):
                q, v = env.physics.named.data.qpos, env.physics.named.data.qvel
                u = 8.0 * q["hinge_1"][0] + 1.5 * v["hinge_1"][0]
                u += 0.5 * q["slider"][0] + 1.0 * v["slider"][0]
                return np.clip(np.full(size, sign * u, np.float32), -1, 1)

            return act

        policies.update({"pd": pd(1.0), "pd-flipped": pd(-1.0)})
    return policies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--heads", required=True, help="folder of <task>/ reward heads")
    parser.add_argument("--task", default="cartpole-balance")
    parser.add_argument("--horizon", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=6, help="rollouts per policy")
    parser.add_argument("--context", type=int, help="observed frames (default: the run's)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    model = keypoint_wm.load(args.run, device="cpu")
    head = load_reward_head(os.path.join(args.heads, args.task), device=model.device)
    context = args.context or model.config.model.num_observed_steps
    domain, name = parse_task_name(args.task)
    repeat, image = training_action_repeat(model), model.config.model.image_size
    probe = DMCPixelEnv(domain, name, size=image, action_repeat=repeat)
    size = probe.action_size
    probe.close()

    rows = []
    for policy_name, policy in scripted_policies(args.task, size).items():
        for seed in range(args.seeds):
            env = DMCPixelEnv(domain, name, size=image, action_repeat=repeat)
            rng = np.random.default_rng(seed)
            frame, _ = env.reset(seed=1000 + seed)
            frames, actions, rewards = [frame], [np.zeros(size, np.float32)], [0.0]
            for t in range(context - 1 + args.horizon):
                action = policy(env, t, rng)
                frame, reward, _, _, _ = env.step(action)
                frames.append(frame)
                actions.append(action)
                rewards.append(float(reward))
            env.close()
            rows.append((policy_name, np.stack(frames), np.stack(actions), np.array(rewards)))
    frames = np.stack([r[1] for r in rows])
    actions = np.stack([r[2] for r in rows])
    real = np.stack([r[3] for r in rows])[:, context:]

    def predicted(imagine: bool, sample: bool) -> np.ndarray:
        """[rollouts, horizon] the head's rewards after the observed context."""
        filt = LatentFilter(model, len(rows), "both", head, sample_latent=sample, seed=0)
        filt.reset(frames[:, 0])
        for t in range(1, context):
            filt.step(actions[:, t], frames[:, t])
        out = []
        for t in range(context, context + args.horizon):
            if imagine:
                filt.imagine(actions[:, t], sample=sample)
            else:
                filt.step(actions[:, t], frames[:, t])
            out.append(filt.rewards_numpy())
        return np.stack(out, 1)

    columns = {
        "real": real,
        "filtered": predicted(False, False),
        "imagined": predicted(True, True),
        "imagined (mean)": predicted(True, False),
    }
    print(
        f"{args.task}: return over {args.horizon} agent steps after {context} observed frames, "
        f"mean of {args.seeds} rollouts from the task's initial states"
    )
    print(f"{'policy':12s}" + "".join(f"{c:>17s}" for c in columns))
    for policy_name in dict.fromkeys(r[0] for r in rows):
        idx = [i for i, r in enumerate(rows) if r[0] == policy_name]
        line = "".join(f"{v[idx].sum(1).mean():17.1f}" for v in columns.values())
        print(f"{policy_name:12s}{line}")
    totals = {c: v.sum(1) for c, v in columns.items()}
    corr = {c: np.corrcoef(totals[c], totals["real"])[0, 1] for c in columns if c != "real"}
    print("correlation with the real return over all rollouts: " + ", ".join(
        f"{c} {r:.2f}" for c, r in corr.items()
    ))  # fmt: skip


if __name__ == "__main__":
    main()

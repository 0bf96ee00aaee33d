"""PPO from TorchRL's own pieces (Collector, GAE, ClipPPOLoss) on MindGym's native maze vector env.

    python -m tests.integrations.torchrl_ppo --batches 30 --pool-size 1            # CPU, one fixed maze
    python -m tests.integrations.torchrl_ppo --device cuda --num-envs 1024 --batches 60 --pool-size 8

5x5 mazes with ``grid`` observations (3x11x11 images), DISABLED autoreset, a 2x128 MLP actor and critic,
``steps`` steps per sub-env a batch, Adam. Env, policy and data all live on ``--device``: the env is wrapped
in ``DeviceGymWrapper``, which is what lets TorchRL 0.14.1 run a CUDA env. Prints one Markdown table row:
greedy success on 256 episodes of the same maze pool before and after training, the share of episodes
ended in the first and last batch that reached the goal, frames, minutes and training steps/s. Needs
torchrl (``pip install -e ".[torchrl]"``).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.collectors import Collector
from torchrl.envs import ExplorationType, set_exploration_type
from torchrl.modules import MLP, ProbabilisticActor, ValueOperator
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE

from envs.common.torchrl import DeviceGymWrapper, make_vec
from envs.maze import MazeLevel

MAZE_5X5 = MazeLevel("5x5", 5, 5)


class Pixels(nn.Module):
    """A (..., C, H, W) uint8 image as (..., C*H*W) floats in [0, 1]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(-3).float() / 255.0


def maze_ppo(
    batches: int = 30,
    num_envs: int = 64,
    steps: int = 32,
    seed: int = 0,
    level: MazeLevel = MAZE_5X5,
    epochs: int = 4,
    minibatch: int = 512,
    lr: float = 1e-3,
    pool_size: int = 512,
    device: str = "cpu",
    max_seconds: float | None = None,
    min_batches: int = 1,
    evaluate: bool = True,
    log: bool = False,
) -> dict[str, Any]:
    """Train for ``batches`` batches, or stop at the first batch's end after ``max_seconds`` of training
    once ``min_batches`` batches are done.

    Returns greedy success before and after (NaN when ``evaluate`` is False), the training success of the
    first and last batch, frames, training seconds, steps/s of the whole loop and of each batch (collection
    plus updates; the first batch includes warm-up).
    """
    torch.manual_seed(seed)
    maze = {"obs_mode": "grid", "levels": [level], "pool_size": pool_size}
    vec = make_vec("mindgym/Maze-v0", num_envs, "disabled", seed=seed, device=device, **maze)
    env = DeviceGymWrapper(vec, categorical_action_encoding=True).auto_register_info_dict()
    features = env.observation_spec["observation"].shape[1:].numel()
    actions = env.action_spec.space.n

    def body(out: int) -> nn.Module:
        return nn.Sequential(Pixels(), MLP(in_features=features, out_features=out, num_cells=[128, 128]))

    actor = ProbabilisticActor(
        TensorDictModule(body(actions), in_keys=["observation"], out_keys=["logits"]),
        in_keys=["logits"],
        spec=env.action_spec,
        distribution_class=torch.distributions.Categorical,
        return_log_prob=True,
    )
    critic = ValueOperator(body(1), in_keys=["observation"])
    actor, critic = actor.to(device), critic.to(device)
    advantage = GAE(gamma=0.99, lmbda=0.95, value_network=critic, average_gae=True)
    loss = ClipPPOLoss(actor, critic, clip_epsilon=0.2, entropy_coeff=0.01, critic_coeff=0.5)
    optimiser = torch.optim.Adam(loss.parameters(), lr=lr)

    def greedy_success(episodes: int = 256) -> float:
        if not evaluate:
            return float("nan")
        eval_vec = make_vec("mindgym/Maze-v0", episodes, "disabled", seed=seed, device=device, **maze)
        eval_env = DeviceGymWrapper(eval_vec, categorical_action_encoding=True).auto_register_info_dict()
        with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
            run = eval_env.rollout(10_000, actor, break_when_all_done=True, break_when_any_done=False)
        done = run["next", "done"].squeeze(-1)
        first = done.float().argmax(dim=1)  # each sub-env's first episode end
        rows = torch.arange(episodes, device=first.device)
        return run["next", "success"][rows, first].float().mean().item()

    before = greedy_success()
    frames_per_batch = num_envs * steps
    collector = Collector(
        env, actor, frames_per_batch=frames_per_batch, total_frames=batches * frames_per_batch, device=device
    )
    start = last = time.perf_counter()
    frames, successes, batch_rates = 0, [], []
    for data in collector:
        with torch.no_grad():
            advantage(data)
        flat = data.reshape(-1)
        for _ in range(epochs):
            for index in torch.randperm(flat.numel(), device=flat.device).split(minibatch):
                out = loss(flat[index])
                total = out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]
                optimiser.zero_grad()
                total.backward()
                nn.utils.clip_grad_norm_(loss.parameters(), 0.5)
                optimiser.step()
        collector.update_policy_weights_()
        ended = data["next", "done"].squeeze(-1)
        successes.append(data["next", "success"][ended].float().mean().item())  # .item() waits for the GPU
        frames += data.numel()
        now = time.perf_counter()
        batch_rates.append(data.numel() / (now - last))
        last = now
        if log and len(successes) % 10 == 0:
            print(len(successes), frames, round(sum(successes[-10:]) / 10, 3), flush=True)
        if max_seconds is not None and now - start >= max_seconds and len(batch_rates) >= min_batches:
            break
    seconds = time.perf_counter() - start
    collector.shutdown()
    return {
        "greedy_success_before": before,
        "greedy_success_after": greedy_success(),
        "train_success_first_batch": successes[0],
        "train_success_last_batch": successes[-1],
        "frames": frames,
        "seconds": seconds,
        "steps_per_second": frames / seconds,
        "batch_steps_per_second": batch_rates,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--steps", type=int, default=32, help="steps per sub-env a batch")
    parser.add_argument("--minibatch", type=int, default=512)
    parser.add_argument("--pool-size", type=int, default=512, help="mazes in the pool (1: one fixed maze)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (small MLPs: 1 is fastest)")
    parser.add_argument("--log", action="store_true", help="print training success every 10 batches")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    wall = time.perf_counter()
    result = maze_ppo(
        batches=args.batches,
        num_envs=args.num_envs,
        steps=args.steps,
        minibatch=args.minibatch,
        pool_size=args.pool_size,
        seed=args.seed,
        device=args.device,
        log=args.log,
    )
    minutes = (time.perf_counter() - wall) / 60
    rates = result["batch_steps_per_second"][1:] or result["batch_steps_per_second"]
    print(
        "| device | envs | pool | frames | greedy before -> after | training success first -> last batch "
        "| wall (min) | training steps/s: loop, median batch |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.device} | {args.num_envs:,} | {args.pool_size} | {result['frames']:,} "
        f"| {result['greedy_success_before']:.1%} -> {result['greedy_success_after']:.1%} "
        f"| {result['train_success_first_batch']:.1%} -> {result['train_success_last_batch']:.1%} "
        f"| {minutes:.1f} | {result['steps_per_second']:,.0f}, {float(np.median(rates)):,.0f} |"
    )


if __name__ == "__main__":
    main()

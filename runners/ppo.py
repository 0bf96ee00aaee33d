"""PPO on MindGym's native vector envs, on the GPU or the CPU: ``python -m runners.ppo``.

One file, read top to bottom like CleanRL's ppo.py: collect ``ppo.num_steps`` steps from ``env.num_envs``
sub-envs into buffers on the env's device, compute GAE advantages, then ``ppo.update_epochs`` passes of
minibatches through the clipped policy loss, the (clipped) value loss and the entropy bonus. Invalid
actions (maze moves into walls) are masked out of the policy; a recurrent policy (GRU) replays each
sub-env's whole rollout from its saved initial state, its state zeroed where an episode starts.
Mazes come from a pool the env regenerates every ``env.reseed_every`` updates, so training keeps seeing
new mazes (``env.refresh``: restarting every sub-env, or each at its own next reset); evaluation walks
fresh mazes from other seeds greedily (runners/ppo_envs.py).

TensorBoard: ``charts/episodic_return``, ``charts/success``, ``charts/SPS``, ``losses/policy_loss``,
``losses/value_loss``, ``losses/entropy`` (and ``losses/approx_kl``, ``losses/clipfrac``,
``eval/<level>/success``). The run folder holds ``tb/``, ``checkpoints/latest.pt`` (atomic, resumable
exactly with ``resume=true``), ``checkpoints/best_level<k>.pt`` (the policy of the best periodic check of
each checked level: a greedy policy can swing between checks) and ``report.json`` with the final table.

    python -m runners.ppo                                   # 5x5 mazes on the CPU, a few minutes
    python -m runners.ppo ppo/preset=maze8 hardware.device=cuda   # 8x8 mazes after a 3x3 curriculum
    python -m runners.ppo ppo/preset=copy8 hardware.device=cuda   # stream-mode Copy to length 8, a GRU
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from agents.ppo_policies import ActorCritic, compile_encoder_step, make_policy
from foundation import (
    derive_seed,
    make_generator,
    restore_generator,
    rng_state,
    seed_everything,
    set_rng_state,
)
from runners.checkpoints import CheckpointManager, ResumePoint, best_name, load_resume_state
from runners.config import ConfigError, option_keys
from runners.ddp import command_line_device
from runners.logging import RunLogger
from runners.ppo_config import register_ppo_config, resume_ppo_config, validate_ppo
from runners.ppo_envs import (
    Evaluator,
    make_training_env,
    masked_logits,
    refresh_training_env,
    restore_training_env,
    staggered_refresh,
    training_seed,
    uses_action_mask,
)
from runners.report import write_report

RUNNER = "ppo"


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    next_value: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and returns of a (T, N) rollout.

    ``dones[t]`` is True when the step ``t`` ended its episode (so step ``t + 1`` starts a new one and
    nothing is bootstrapped across); ``next_value`` (N,) is the value of the observation after the last
    step. A time-limit truncation counts as an end, as in CleanRL.
    """
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    for t in reversed(range(rewards.shape[0])):
        following = next_value if t == rewards.shape[0] - 1 else values[t + 1]
        alive = 1.0 - dones[t].float()
        delta = rewards[t] + gamma * following * alive - values[t]
        last = delta + gamma * gae_lambda * alive * last
        advantages[t] = last
    return advantages, advantages + values


def sample_actions(logits: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Actions drawn from ``softmax(logits)`` with the run's own generator (Gumbel-max), and their
    log-probabilities; a masked logit (-1e8) is never drawn."""
    uniform = torch.rand(logits.shape, generator=generator, device=logits.device).clamp_(min=1e-20)
    actions = (logits - torch.log(-torch.log(uniform))).argmax(-1)
    return actions, torch.log_softmax(logits, -1).gather(1, actions[:, None]).squeeze(1)


def evaluate_actions(
    net: ActorCritic,
    obs: torch.Tensor,
    state: torch.Tensor,
    starts: torch.Tensor,
    actions: torch.Tensor,
    masks: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(log-prob, entropy, value) of ``actions`` for (T, B) rows: the recurrent policy steps through time
    from ``state`` (B, H), a feed-forward one reads all rows at once."""
    steps, batch = obs.shape[:2]
    if net.recurrent:
        logits, values = [], []
        for t in range(steps):
            step_logits, value, state = net(obs[t], state, starts[t])
            logits.append(step_logits)
            values.append(value)
        logits, value = torch.stack(logits).flatten(0, 1), torch.stack(values).flatten()
    else:
        flat = starts.flatten()
        logits, value, _ = net(obs.flatten(0, 1), net.initial_state(flat.shape[0], obs.device), flat)
    logits = masked_logits(logits, None if masks is None else masks.flatten(0, 1))
    log_probs = torch.log_softmax(logits, -1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    chosen = log_probs.gather(1, actions.flatten()[:, None]).squeeze(1)
    return chosen.view(steps, batch), entropy.view(steps, batch), value.view(steps, batch)


class RolloutBuffer:
    """One rollout's buffers (T, N, ...) on the env's device, and what carries from one rollout to the
    next: the last observation, the recurrent state, which sub-envs start an episode, the running
    returns and the episode statistics summed on the device between log points."""

    def __init__(self, num_steps: int, num_envs: int, obs_space: Any, num_actions: int, device: torch.device):
        obs_dtype = torch.uint8 if str(obs_space.dtype) == "uint8" else torch.long
        self.obs = torch.zeros((num_steps, num_envs, *obs_space.shape), dtype=obs_dtype, device=device)
        self.actions = torch.zeros((num_steps, num_envs), dtype=torch.long, device=device)
        self.logprobs, self.rewards, self.values = (
            torch.zeros((num_steps, num_envs), device=device) for _ in "123"
        )
        self.dones = torch.zeros((num_steps, num_envs), dtype=torch.bool, device=device)
        self.starts = torch.zeros_like(self.dones)
        self.masks = torch.ones((num_steps, num_envs, num_actions), dtype=torch.bool, device=device)
        self.ep_return = torch.zeros(num_envs, device=device)
        self.stats = torch.zeros(3, device=device)  # finished episodes, their returns, their successes
        self.next_obs: Any = None
        self.next_state = self.initial_state = self.next_starts = torch.zeros(0, device=device)

    def restart(self, obs: Any, net: ActorCritic) -> None:
        """Every sub-env starts an episode at ``obs`` (after an env reset)."""
        num_envs = self.dones.shape[1]
        self.next_obs, self.next_state = obs, net.initial_state(num_envs, self.dones.device)
        self.next_starts = torch.ones(num_envs, dtype=torch.bool, device=self.dones.device)
        self.ep_return.zero_()

    def restart_envs(self, obs: Any, restarted: torch.Tensor) -> None:
        """The sub-envs where ``restarted`` start an episode at ``obs`` (the others continue theirs; ``obs``
        holds every sub-env's observation); a recurrent state is zeroed where an episode starts."""
        self.next_obs = obs
        self.next_starts = self.next_starts | restarted
        self.ep_return = self.ep_return.masked_fill(restarted, 0.0)

    def carry_state(self) -> dict[str, torch.Tensor]:
        """What carries into the next rollout, but the observation (the env gives it back on resume)."""
        carry = {"state": self.next_state, "starts": self.next_starts, "ep_return": self.ep_return}
        return {name: value.detach().cpu().clone() for name, value in (carry | {"stats": self.stats}).items()}

    def load_carry_state(self, carry: dict[str, torch.Tensor], obs: Any) -> None:
        """Continue from :meth:`carry_state` with the env's current observations ``obs``."""
        device = self.dones.device
        self.next_obs, self.next_state = obs, carry["state"].to(device)
        self.next_starts, self.ep_return = carry["starts"].to(device), carry["ep_return"].to(device)
        self.stats = carry["stats"].to(device)


def collect(
    rollout: RolloutBuffer,
    envs: Any,
    base: Any,
    net: ActorCritic,
    generator: torch.Generator,
    use_mask: bool,
) -> torch.Tensor:
    """Step ``envs`` ``num_steps`` times with actions sampled from ``net`` into ``rollout``'s buffers,
    without a host sync; returns the value of the observation after the last step (for GAE)."""
    obs, state, starts = rollout.next_obs, rollout.next_state, rollout.next_starts
    rollout.initial_state = state.clone()
    for step in range(rollout.obs.shape[0]):
        rollout.obs[step], rollout.starts[step] = obs, starts
        with torch.no_grad():
            logits, value, state = net(obs, state, starts)
        if use_mask:
            rollout.masks[step] = base.action_masks()
            logits = masked_logits(logits, rollout.masks[step])
        action, logprob = sample_actions(logits, generator)
        obs, reward, terminated, truncated, info = envs.step(action)
        done = terminated | truncated
        rollout.actions[step], rollout.logprobs[step], rollout.values[step] = action, logprob, value
        rollout.rewards[step], rollout.dones[step] = reward, done
        rollout.ep_return += reward
        success = info["final_info"]["success"] & done
        rollout.stats += torch.stack([done.sum(), (rollout.ep_return * done).sum(), success.sum()]).float()
        rollout.ep_return = rollout.ep_return.masked_fill(done, 0.0)
        starts = done
    rollout.next_obs, rollout.next_state, rollout.next_starts = obs, state, starts
    with torch.no_grad():
        return net(obs, state, starts)[1]


def rollout_advantages(
    rollout: RolloutBuffer, next_value: torch.Tensor, algo: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE advantages and returns of a collected ``rollout`` with the run's ``ppo.gamma`` and
    ``ppo.gae_lambda``."""
    return gae(
        rollout.rewards, rollout.values, rollout.dones, next_value, float(algo.gamma), float(algo.gae_lambda)
    )


def optimise(
    net: ActorCritic,
    optimizer: torch.optim.Optimizer,
    rollout: RolloutBuffer,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    algo: Any,
    generator: torch.Generator,
    use_mask: bool,
) -> dict[str, torch.Tensor]:
    """``ppo.update_epochs`` passes of minibatches of whole sub-envs (a recurrent policy needs each one's
    sequence) through the clipped objective; returns the last minibatch's losses (device tensors)."""
    num_envs = rollout.dones.shape[1]
    env_ids = torch.arange(num_envs, device=rollout.dones.device)
    per_batch = num_envs // int(algo.num_minibatches)
    clip = float(algo.clip_coef)
    for _epoch in range(int(algo.update_epochs)):
        order = env_ids[torch.randperm(num_envs, generator=generator, device=env_ids.device)]
        for first in range(0, num_envs, per_batch):
            mb = order[first : first + per_batch]
            new_logprob, entropy, new_value = evaluate_actions(
                net,
                rollout.obs[:, mb],
                rollout.initial_state[mb],
                rollout.starts[:, mb],
                rollout.actions[:, mb],
                rollout.masks[:, mb] if use_mask else None,
            )
            log_ratio = new_logprob - rollout.logprobs[:, mb]
            ratio = log_ratio.exp()
            with torch.no_grad():
                approx_kl = ((ratio - 1) - log_ratio).mean()
                clipfrac = ((ratio - 1.0).abs() > clip).float().mean()
            mb_adv = advantages[:, mb]
            if algo.norm_adv:
                mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
            pg_loss = torch.max(-mb_adv * ratio, -mb_adv * ratio.clamp(1 - clip, 1 + clip)).mean()
            old_value, target = rollout.values[:, mb], returns[:, mb]
            if algo.clip_vloss:
                clipped = old_value + (new_value - old_value).clamp(-clip, clip)
                v_loss = 0.5 * torch.max((new_value - target) ** 2, (clipped - target) ** 2).mean()
            else:
                v_loss = 0.5 * ((new_value - target) ** 2).mean()
            entropy_loss = entropy.mean()
            loss = pg_loss - float(algo.ent_coef) * entropy_loss + float(algo.vf_coef) * v_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), float(algo.max_grad_norm))
            optimizer.step()
        if algo.target_kl is not None and float(approx_kl) > float(algo.target_kl):
            break
    return {
        "policy_loss": pg_loss,
        "value_loss": v_loss,
        "entropy": entropy_loss,
        "approx_kl": approx_kl,
        "clipfrac": clipfrac,
    }


def build_policy(cfg: DictConfig, base: Any, device: torch.device) -> ActorCritic:
    """The ``policy`` config's actor-critic for the env ``base`` on ``device``, its maze encoder's update
    compiled when ``policy.compile`` is set (shared with bench.ppo_throughput, which times this policy)."""
    policy = cfg.policy
    net = make_policy(
        base.single_observation_space,
        int(base.single_action_space.n),
        str(policy.kind),
        int(policy.hidden),
        int(policy.channels),
        int(policy.iterations),
        policy.recurrent,
        bool(policy.bf16),
    ).to(device)
    if policy.compile and not compile_encoder_step(net):
        print(f"policy.compile=true: policy.kind={policy.kind} has no repeated update to compile; eager.")
    return net


def ppo_device(device: str) -> torch.device:
    """``hardware.device`` resolved, or a ConfigError naming the overrides to type: runners.ppo has no
    ``hardware`` config group, so its CPU fix is ``hardware.device=cpu`` (where the other runners say
    ``hardware=cpu``)."""
    return command_line_device(device, cpu_override="hardware.device=cpu")


def train(cfg: DictConfig, run_dir: Path, resumed: ResumePoint | None = None) -> dict[str, Any]:
    """Train to ``trainer.total_steps`` env steps (or ``trainer.max_minutes``), evaluate, write the report."""
    device = ppo_device(str(cfg.hardware.device))
    if cfg.hardware.num_threads > 0:
        torch.set_num_threads(int(cfg.hardware.num_threads))
    seed_everything(int(cfg.seed))
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 matmuls (cuDNN convolutions use TF32 already)
        torch.backends.cudnn.benchmark = True  # the maze CNN's shapes repeat: pick the fastest kernels once
    algo, num_envs, num_steps = cfg.ppo, int(cfg.env.num_envs), int(cfg.ppo.num_steps)
    batch_size = num_envs * num_steps
    num_updates = int(cfg.trainer.total_steps) // batch_size
    envs, base = make_training_env(cfg, device)
    curriculum = getattr(envs, "curriculum", None)
    use_mask = uses_action_mask(cfg)
    net = build_policy(cfg, base, device)
    optimizer = torch.optim.Adam(net.parameters(), lr=float(algo.learning_rate), eps=1e-5)
    generator = make_generator(derive_seed(int(cfg.seed), "ppo/actions"), device=device)
    evaluator = Evaluator(cfg, device, base)
    checkpoints = CheckpointManager(run_dir / "checkpoints")
    logger = RunLogger(run_dir / "tb")

    # ---- rollout buffers, on the env's device
    num_actions = int(base.single_action_space.n)
    rollout = RolloutBuffer(num_steps, num_envs, base.single_observation_space, num_actions, device)

    update, global_step, history = 0, 0, []
    if resumed is not None:
        state = resumed.state["experiment"]
        net.load_state_dict(state["policy"])
        optimizer.load_state_dict(state["optimizer"])
        restore_generator(generator, state["generator"], "ppo/actions")
        if curriculum is not None:
            curriculum.load_state_dict(state["curriculum"])
        set_rng_state(resumed.state["rng"])
        update, global_step, history = resumed.step, int(state["global_step"]), list(resumed.state["history"])
        if state.get("env") is not None:  # a staggered run continues every episode where it was
            rollout.load_carry_state(state["rollout"], restore_training_env(envs, base, state["env"]))
    staggered = staggered_refresh(cfg)

    def checkpoint_state() -> dict[str, Any]:
        return {
            "runner": RUNNER,
            "step": update,
            "config": OmegaConf.to_container(cfg, resolve=True),
            "experiment": {
                "policy": net.state_dict(),
                "optimizer": optimizer.state_dict(),
                "generator": generator.get_state(),
                "curriculum": curriculum.state_dict() if curriculum is not None else None,
                "global_step": global_step,
                "env": base.state_dict() if staggered else None,
                "rollout": rollout.carry_state() if staggered else None,
            },
            "history": history,
            "rng": rng_state(),
            "minutes": minutes(),
        }

    started, stopped, sps_clock, sps_steps = time.monotonic(), None, time.perf_counter(), 0
    # the run's wall clock (evaluation records, checkpoints) counts on across a resume; the budget
    # trainer.max_minutes is per call, so that a long run is chained in calls of one length
    minutes_before = float(resumed.state.get("minutes", 0.0)) if resumed is not None else 0.0

    def minutes() -> float:
        return minutes_before + (time.monotonic() - started) / 60.0

    while update < num_updates:
        if rollout.next_obs is None:  # the run's start, or a resume of a run that restarts every env
            obs, _ = envs.reset(seed=training_seed(cfg, update))
            rollout.restart(obs, net)
        elif update % int(cfg.env.reseed_every) == 0:  # new mazes, seeded by the update: exact resume
            obs, restarted = refresh_training_env(envs, base, cfg, update)
            if restarted is None:
                rollout.restart(obs, net)
            else:
                rollout.restart_envs(obs, restarted)
                logger.scalars("charts", {"refresh_restarts": float(restarted.sum())}, global_step)
        if algo.anneal_lr:
            optimizer.param_groups[0]["lr"] = (1.0 - update / num_updates) * float(algo.learning_rate)

        # ---- rollout, advantages, then minibatch epochs of the clipped objective
        next_value = collect(rollout, envs, base, net, generator, use_mask)
        advantages, returns = rollout_advantages(rollout, next_value, algo)
        losses = optimise(net, optimizer, rollout, advantages, returns, algo, generator, use_mask)

        update += 1
        global_step += batch_size
        sps_steps += batch_size
        if curriculum is not None:
            curriculum.advance(1)  # the run's one clock: one tick per PPO update

        # ---- log, evaluate, checkpoint, stop
        if update % int(cfg.trainer.log_every) == 0 or update == num_updates:
            episodes, returns_sum, successes = rollout.stats.tolist()
            rollout.stats.zero_()
            variance = returns.flatten().var()
            residual = (returns.flatten() - rollout.values.flatten()).var()
            explained = 1 - residual / variance if variance > 0 else 0
            now = time.perf_counter()
            charts = {
                "SPS": sps_steps / max(now - sps_clock, 1e-9),
                "learning_rate": optimizer.param_groups[0]["lr"],
            }
            sps_clock, sps_steps = now, 0
            if episodes:
                charts |= {"episodic_return": returns_sum / episodes, "success": successes / episodes}
            logger.scalars("charts", charts, global_step)
            logger.scalars("losses", losses | {"explained_variance": explained}, global_step)
            if curriculum is not None:
                curriculum.log(logger.writer, global_step)
        if update % int(cfg.trainer.eval_every) == 0:
            history.append(periodic_eval(evaluator, net, cfg, update, global_step, minutes(), logger))
            for index, name in eval_levels(cfg, evaluator).items():  # greedy policies swing: keep the best
                checkpoints.update_best(index, history[-1][name]["success"], checkpoint_state())
        if time.monotonic() - started >= 60.0 * float(cfg.trainer.max_minutes or float("inf")):
            stopped = f"time budget of trainer.max_minutes={cfg.trainer.max_minutes} spent"
        if update % int(cfg.trainer.checkpoint_every) == 0 or update == num_updates or stopped:
            checkpoints.save_latest(checkpoint_state())
        if stopped:
            print(f"Stopped after update {update} ({stopped}); saved {checkpoints.latest_path}.")
            break

    train_minutes = (time.monotonic() - started) / 60.0
    table = evaluator.table(net)
    report = {
        "runner": RUNNER,
        "updates": update,
        "env_steps": global_step,
        "train_minutes": train_minutes,
        "stopped_early": stopped,
        "device": str(device),
        "eval_episodes": int(cfg.eval.episodes),
        "final": table,
        "best_checkpoints": best_checkpoints(checkpoints, evaluator),
        "volatility": check_volatility(history, list(eval_levels(cfg, evaluator).values())),
        "history": history,
        "curriculum": curriculum.summary() if curriculum is not None else None,
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    write_report(report, run_dir / "report.json")
    logger.close()
    print(final_table(report))
    if bests := report["best_checkpoints"]:
        shown = ", ".join(f"{name} {best['success']:.3f}" for name, best in bests.items())
        print(f"Best checkpoints (checkpoints/best_level<k>.pt, greedy success when saved): {shown}.")
    for name, swing in report["volatility"].items():
        print(
            f"{name}: {swing['checks_mastered']} checks at >= {MASTERED} greedy success, followed by "
            f"{swing['drops']} drops of more than {DROP} at the next check "
            f"(largest {swing['largest_drop']:.3f})."
        )
    print(f"Run folder: {run_dir} (report.json, tb/ for tensorboard --logdir, checkpoints/latest.pt).")
    return report


MASTERED, DROP = 0.9, 0.1  # a check at this greedy success or more is "mastered"; a fall of more is a drop


def check_volatility(history: list[dict[str, Any]], names: list[str]) -> dict[str, dict[str, float]]:
    """How the periodic greedy checks of each level swing once mastered: of the consecutive pairs of checks
    whose first is at least :data:`MASTERED`, how many (``checks_mastered``), how many fall by more than
    :data:`DROP` (``drops``), the largest and the mean fall (rises count as 0). A greedy policy can
    change its choice at a junction between checks; these say how often that costs a mastered level."""
    result = {}
    for name in names:
        scores = [record[name]["success"] for record in history if name in record]
        falls = [max(a - b, 0.0) for a, b in itertools.pairwise(scores) if a >= MASTERED]
        result[name] = {
            "checks_mastered": len(falls),
            "drops": sum(fall > DROP for fall in falls),
            "largest_drop": max(falls, default=0.0),
            "mean_drop": sum(falls) / len(falls) if falls else 0.0,
        }
    return result


def eval_levels(cfg: DictConfig, evaluator: Evaluator) -> dict[int, str]:
    """The ladder levels the periodic checks walk (``eval.levels``; default: the last), index -> name."""
    names = evaluator.fresh.task.ladder.names
    levels = list(cfg.eval.levels) if cfg.eval.levels is not None else [len(names) - 1]
    return {int(index): names[index] for index in levels}


def best_checkpoints(checkpoints: CheckpointManager, evaluator: Evaluator) -> dict[str, dict[str, Any]]:
    """Each checked level's best greedy success and the file that holds that policy."""
    names = evaluator.fresh.task.ladder.names
    return {
        names[index]: {"success": score, "file": best_name(index)}
        for index, score in sorted(checkpoints.best_scores().items())
    }


def periodic_eval(
    evaluator: Evaluator,
    net: ActorCritic,
    cfg: DictConfig,
    update: int,
    global_step: int,
    minutes: float,
    logger: RunLogger,
) -> dict[str, Any]:
    """Greedy success on fresh episodes at ``eval.levels`` (default: the last level), logged and printed."""
    levels = eval_levels(cfg, evaluator)
    record: dict[str, Any] = {"update": update, "env_steps": global_step}
    record["minutes"] = minutes
    for index, name in levels.items():
        result = evaluator.level(net, index)
        logger.scalars(f"eval/{name}", result, global_step)
        record[name] = result
    shown = ", ".join(f"{name} {record[name]['success']:.3f}" for name in levels.values())
    sps = global_step / max(60.0 * record["minutes"], 1e-9)
    print(
        f"update {update}, {global_step:,} env steps, {record['minutes']:.1f} min ({sps:,.0f} env steps/s "
        f"with evaluations): greedy success {shown}"
    )
    return record


def final_table(report: dict[str, Any]) -> str:
    """The closing table: one row per level, greedy success on fresh episodes (and on the training pool)."""
    rows = report["final"]
    columns = sorted({c for row in rows.values() for c in row})
    head = f"{'level':<12}" + "".join(f"{c:>16}" for c in columns)
    lines = [
        f"PPO after {report['updates']} updates, {report['env_steps']:,} env steps, "
        f"{report['train_minutes']:.1f} min on {report['device']} "
        f"(greedy, {report['eval_episodes']} episodes a level, seeds disjoint from training):",
        head,
    ]
    for name, row in rows.items():
        lines.append(f"{name:<12}" + "".join(f"{row.get(c, float('nan')):>16.3f}" for c in columns))
    return "\n".join(lines)


def run(cfg: DictConfig, run_dir: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Check the config, resume if asked (the checkpoint's own config, only safe changes), and train."""
    validate_ppo(cfg)
    run_dir = Path(run_dir)
    point = load_resume_state(cfg.resume, run_dir)
    if point is not None:
        if point.runner != RUNNER:
            raise ConfigError(
                f"resume={cfg.resume!r} is a {point.runner!r} checkpoint, not a runners.ppo one."
            )
        cfg = resume_ppo_config(point.config, cfg, option_keys(overrides or []))
        validate_ppo(cfg)
        if point.step >= int(cfg.trainer.total_steps) // (int(cfg.env.num_envs) * int(cfg.ppo.num_steps)):
            raise ConfigError(
                f"resume: the run in {point.path} already did its updates; extend it with a larger "
                f"trainer.total_steps (now {cfg.trainer.total_steps})."
            )
    return train(cfg, run_dir, point)


register_ppo_config()


@hydra.main(version_base="1.3", config_path="conf", config_name="ppo")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg, HydraConfig.get().runtime.output_dir, list(HydraConfig.get().overrides.task))
    except ConfigError as err:
        raise SystemExit(f"Error in the config of runners.ppo: {err}") from None


if __name__ == "__main__":
    main()

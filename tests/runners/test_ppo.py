"""runners.ppo: GAE, action masks, the recurrent policy's state, learning a fixed maze, exact resume."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from agents.ppo_policies import make_policy
from foundation import load_checkpoint
from runners.config import CONF_PATH, ConfigError
from runners.ppo import build_policy, check_volatility, evaluate_actions, gae, run, sample_actions
from runners.ppo_config import register_ppo_config, validate_ppo
from runners.ppo_envs import make_training_env, masked_logits

# A fixed 3x3 maze (one character a cell): start top left, goal bottom left, one way round (6 moves).
TINY = [
    "env.levels=[{name: fixed, height: 3, width: 3, generator: layout, layout: 'S  \n## \nG  '}]",
    "curriculum.name=none",
    "env.num_envs=16",
    "ppo.num_steps=16",
    "ppo.num_minibatches=2",
    "policy.channels=8",
    "policy.iterations=2",
    "policy.hidden=32",
    "eval.episodes=8",
    "hardware.num_threads=1",
]


def config(*overrides: str) -> DictConfig:
    register_ppo_config()
    with initialize_config_dir(config_dir=str(CONF_PATH), version_base="1.3"):
        return compose(config_name="ppo", overrides=list(overrides))


def test_gae_matches_a_hand_computation():
    rewards = torch.tensor([[1.0], [0.0], [2.0]])
    values = torch.tensor([[0.5], [0.4], [0.3]])
    dones = torch.tensor([[False], [True], [False]])
    advantages, returns = gae(rewards, values, dones, torch.tensor([0.2]), gamma=0.9, gae_lambda=0.8)
    # t=2: 2 + 0.9*0.2 - 0.3 = 1.88; t=1 ends its episode: 0 - 0.4 = -0.4 (nothing bootstrapped);
    # t=0: (1 + 0.9*0.4 - 0.5) + 0.9*0.8*(-0.4) = 0.86 - 0.288 = 0.572
    assert advantages.flatten().tolist() == pytest.approx([0.572, -0.4, 1.88])
    assert returns.flatten().tolist() == pytest.approx([1.072, 0.0, 2.18])


def test_masked_actions_are_never_chosen():
    logits = torch.tensor([[10.0, 0.0, 0.0, 0.0]]).repeat(4096, 1)  # the masked action is the favourite
    mask = torch.tensor([[False, True, True, False]]).repeat(4096, 1)
    actions, log_probs = sample_actions(masked_logits(logits, mask), torch.Generator().manual_seed(0))
    assert mask.gather(1, actions[:, None]).all()
    assert set(actions.tolist()) == {1, 2}  # both legal moves are drawn
    assert torch.isfinite(log_probs).all()
    net = make_policy(_grid_space(), 4, iterations=1)
    obs = torch.zeros(2, 3, 7, 7, dtype=torch.uint8)
    masks = torch.tensor([[[False, False, True, False]] * 2])
    starts, chosen = torch.ones(1, 2, dtype=torch.bool), torch.full((1, 2), 2)
    _, entropy, _ = evaluate_actions(net, obs[None], net.initial_state(2, "cpu"), starts, chosen, masks)
    assert torch.allclose(entropy, torch.zeros_like(entropy), atol=1e-6)  # one legal move: no entropy


def _grid_space():
    import gymnasium as gym
    import numpy as np

    return gym.spaces.Box(0, 255, (3, 7, 7), np.uint8)


def test_recurrent_policy_carries_state_and_resets_where_episodes_start():
    import gymnasium as gym

    net = make_policy(gym.spaces.Discrete(10), 3, kind="gru", hidden=16)
    first, second = torch.tensor([1, 1]), torch.tensor([2, 2])
    fresh = net.initial_state(2, "cpu")
    _, _, state = net(first, fresh, torch.ones(2, dtype=torch.bool))
    assert state.abs().sum() > 0
    carried, _, _ = net(second, state, torch.tensor([False, True]))
    from_zero, _, _ = net(second, fresh, torch.ones(2, dtype=torch.bool))
    assert not torch.allclose(carried[0], from_zero[0])  # sub-env 0 remembers the first token
    assert torch.allclose(carried[1], from_zero[1])  # sub-env 1 started a new episode: state zeroed
    # replaying a sequence from the initial state gives the step-by-step log-probabilities
    obs, starts = torch.stack([first, second]), torch.tensor([[True, True], [False, True]])
    actions = torch.tensor([[0, 1], [2, 0]])
    log_probs, _, _ = evaluate_actions(net, obs, fresh, starts, actions, None)
    step0, _, s = net(first, fresh, starts[0])
    step1, _, _ = net(second, s, starts[1])
    expected = torch.stack(
        [
            step0.log_softmax(-1).gather(1, actions[0, :, None]).squeeze(1),
            step1.log_softmax(-1).gather(1, actions[1, :, None]).squeeze(1),
        ]
    )
    assert torch.allclose(log_probs, expected, atol=1e-6)


def test_a_bad_setting_is_refused_with_the_override_that_fixes_it():
    with pytest.raises(ConfigError, match=r"ppo.num_steps must be .*e.g. ppo.num_steps=32"):
        validate_ppo(config("ppo.num_steps=0"))
    with pytest.raises(ConfigError, match=r"multiple of ppo\.num_minibatches"):
        validate_ppo(config("env.num_envs=10", "ppo.num_minibatches=4"))
    with pytest.raises(ConfigError, match=r"env\.obs_mode must be one of"):
        validate_ppo(config("env.obs_mode=tokens"))
    with pytest.raises(ConfigError, match=r"env\.refresh must be one of .*e\.g\. env\.refresh=staggered"):
        validate_ppo(config("env.refresh=sometimes"))
    with pytest.raises(ConfigError, match=r"env\.family=copy has none; use env\.refresh=all"):
        validate_ppo(config("env.family=copy", "env.obs_mode=stream", "env.refresh=staggered"))


PRESETS = sorted(path.stem for path in (CONF_PATH / "ppo" / "preset").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_passes_validation_and_its_policy_acts_on_its_env(preset):
    validate_ppo(config(f"ppo/preset={preset}"))  # as the GPU command composes it
    small = ["hardware.device=cpu", "env.num_envs=16", "env.pool_size=16", "policy.compile=false"]
    cfg = config(f"ppo/preset={preset}", *small)
    envs, base = make_training_env(cfg, torch.device("cpu"))
    net = build_policy(cfg, base, torch.device("cpu"))
    obs, _ = envs.reset(seed=0)
    logits, value, _ = net(obs, net.initial_state(16, "cpu"), torch.ones(16, dtype=torch.bool))
    assert logits.shape == (16, base.single_action_space.n) and torch.isfinite(value).all()


@pytest.mark.parametrize("kind", ["maze_cnn", "maze_graph"])
def test_learns_a_fixed_maze_on_the_cpu(tmp_path, kind):
    tiny = [*TINY, f"policy.kind={kind}"]
    untrained = run(config(*tiny, "trainer.total_steps=256", "ppo.learning_rate=1e-12"), tmp_path / "before")
    assert untrained["final"]["fixed"]["fresh_success"] == 0.0  # the initial greedy walk loops
    cfg = config(*tiny, "trainer.total_steps=4096", "ppo.learning_rate=0.003", "trainer.eval_every=1000")
    report = run(cfg, tmp_path)
    assert report["final"]["fixed"]["fresh_success"] == 1.0  # greedy walk reaches the goal
    assert report["final"]["fixed"]["fresh_optimal"] == 1.0  # by the shortest way
    assert (tmp_path / "report.json").is_file() and list((tmp_path / "tb").iterdir())


def run_whole_and_split(common: list[str], updates: int, split_at: int, tmp_path) -> tuple[dict, dict]:
    """The last checkpoints of a run of ``updates`` updates and of one stopped after ``split_at`` and
    resumed to the same end (16 envs x 16 steps an update, as TINY)."""
    per_update = 16 * 16
    run(config(*common, f"trainer.total_steps={updates * per_update}"), tmp_path / "whole")
    run(config(*common, f"trainer.total_steps={split_at * per_update}"), tmp_path / "split")
    overrides = [f"trainer.total_steps={updates * per_update}", "resume=true"]
    run(config(*common, *overrides), tmp_path / "split", overrides=overrides)
    return (
        load_checkpoint(tmp_path / "whole" / "checkpoints" / "latest.pt"),
        load_checkpoint(tmp_path / "split" / "checkpoints" / "latest.pt"),
    )


@pytest.mark.parametrize("kind", ["maze_cnn", "maze_graph"])
def test_resume_continues_exactly_as_an_uninterrupted_run(tmp_path, kind):
    common = [
        *TINY,
        f"policy.kind={kind}",
        "ppo.anneal_lr=false",
        "env.reseed_every=2",
        "trainer.checkpoint_every=2",
    ]
    whole, split = run_whole_and_split(common, 4, 2, tmp_path)
    assert whole["step"] == split["step"] == 4
    for name, tensor in whole["experiment"]["policy"].items():
        assert torch.equal(tensor, split["experiment"]["policy"][name]), name
    assert torch.equal(whole["experiment"]["generator"], split["experiment"]["generator"])


def test_a_staggered_run_resumes_exactly_from_any_update(tmp_path):
    """env.refresh=staggered saves the env's episodes: a checkpoint between two refreshes (update 3 of
    reseed_every=2) continues as the uninterrupted run, with no restart of every sub-env at the resume."""
    common = [
        *TINY[2:],
        "env.levels=[{name: 3x3, height: 3, width: 3}, {name: 4x4, height: 4, width: 4}]",
        "curriculum.name=adaptive",  # the levels each sub-env plays next are part of what resumes
        "curriculum.params.threshold=0.0",
        "curriculum.params.min_episodes=1",
        "curriculum.params.replay=0.5",
        "policy.kind=maze_graph",
        "ppo.anneal_lr=false",
        "env.refresh=staggered",
        "env.pool_size=8",
        "env.reseed_every=2",
        "trainer.checkpoint_every=1",
    ]
    whole, split = run_whole_and_split(common, 6, 3, tmp_path)
    assert whole["step"] == split["step"] == 6
    for name, tensor in whole["experiment"]["policy"].items():
        assert torch.equal(tensor, split["experiment"]["policy"][name]), name
    for name, tensor in whole["experiment"]["env"].items():
        if isinstance(tensor, torch.Tensor):
            assert torch.equal(tensor, split["experiment"]["env"][name]), name
    assert bool(whole["experiment"]["env"]["t"].any())  # saved mid-episode, not at a restart
    assert len(set(whole["experiment"]["env"]["level_ids"].tolist())) == 2  # both levels in play


def test_volatility_counts_the_falls_of_a_mastered_level():
    history = [{"update": i, "8x8": {"success": s}} for i, s in enumerate([0.5, 0.95, 0.6, 0.98, 0.97, 0.2])]
    swing = check_volatility(history, ["8x8"])["8x8"]
    assert swing["checks_mastered"] == 3 and swing["drops"] == 2  # 0.95 -> 0.6 and 0.97 -> 0.2
    assert swing["largest_drop"] == pytest.approx(0.77)
    assert swing["mean_drop"] == pytest.approx((0.35 + 0.01 + 0.77) / 3)


def test_resume_refuses_a_changed_setting(tmp_path):
    per_update = 16 * 16
    run(config(*TINY, f"trainer.total_steps={per_update}"), tmp_path)
    changed = config(*TINY, f"trainer.total_steps={2 * per_update}", "ppo.clip_coef=0.3", "resume=true")
    with pytest.raises(ConfigError, match=r"ppo\.clip_coef: saved 0\.2, now 0\.3"):
        run(changed, tmp_path, overrides=["ppo.clip_coef=0.3", "resume=true"])


def test_best_checkpoint_holds_the_policy_of_the_best_check(tmp_path):
    cfg = config(*TINY, "trainer.total_steps=2048", "ppo.learning_rate=0.003", "trainer.eval_every=1")
    report = run(cfg, tmp_path)
    checks = [record["fixed"]["success"] for record in report["history"]]
    best = report["best_checkpoints"]["fixed"]
    assert best["success"] == max(checks) and min(checks) < max(checks)  # it learned during the run
    saved = load_checkpoint(tmp_path / "checkpoints" / best["file"])
    assert saved["step"] == report["history"][checks.index(max(checks))]["update"]  # the first best check


def test_a_resumed_run_counts_its_minutes_on_from_the_save(tmp_path):
    per_update = 16 * 16
    common = [*TINY, "trainer.eval_every=1", "trainer.checkpoint_every=1"]
    run(config(*common, f"trainer.total_steps={2 * per_update}"), tmp_path)
    saved = load_checkpoint(tmp_path / "checkpoints" / "latest.pt")["minutes"]
    overrides = [f"trainer.total_steps={4 * per_update}", "resume=true"]
    report = run(config(*common, *overrides), tmp_path, overrides=overrides)
    minutes = [record["minutes"] for record in report["history"]]
    assert len(minutes) == 4 and minutes == sorted(minutes) and minutes[2] >= saved > minutes[1]

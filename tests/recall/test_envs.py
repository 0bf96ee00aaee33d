"""Single and vector recall envs: checkers, oracle play, agreement, per-sub-env levels, SB3 and make_vec."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs  # noqa: F401  (registers mindgym/*)
from envs.common.sb3 import SB3VecEnvAdapter
from envs.recall.copy_task import CopyLevel
from envs.recall.env import EPISODE_BLOCK, RecallEnv
from envs.recall.vector import RecallVectorEnv
from tests.recall.oracle_agent import FAMILIES, oracle_action, small_levels

ENV_IDS = {
    "copy": "Copy",
    "repeat_copy": "RepeatCopy",
    "associative": "AssociativeRecall",
    "needle": "Needle",
}


@pytest.mark.parametrize("mode", ["sequence", "stream"])
@pytest.mark.parametrize("family", FAMILIES)
def test_both_env_checkers_pass(family, mode):
    env = gym.make(f"mindgym/{ENV_IDS[family]}-v0", obs_mode=mode, levels=small_levels(family), level=1)
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(RecallEnv(family, obs_mode=mode, levels=small_levels(family), level=1), warn=False)


@pytest.mark.parametrize("family", FAMILIES)
def test_oracle_agent_gets_return_one_and_exact_match(family):
    env = RecallEnv(family, levels=small_levels(family))
    for level in range(2):
        env.set_level(level)
        obs, info = env.reset(seed=level)
        assert info["level"] == level and info["accuracy"] == 0.0 and not info["success"]
        total, done = 0.0, False
        while not done:
            action = oracle_action(env.task, obs["tokens"], obs["length"][0])
            obs, reward, done, truncated, info = env.step(action)
            total += reward
            assert not truncated
        assert total == pytest.approx(1.0) and info["success"] and info["accuracy"] == 1.0


def test_wrong_answers_score_the_fraction_right():
    env = RecallEnv("copy", levels=[CopyLevel("c", length=4, vocab=2)])
    obs, _ = env.reset(seed=0)
    total, info, step = 0.0, {}, 0
    done = False
    while not done:
        right = oracle_action(env.task, obs["tokens"], obs["length"][0])
        obs, reward, done, _, info = env.step(right if step % 2 == 0 else 1 - right)
        total, step = total + reward, step + 1
    assert total == pytest.approx(0.5) and info["accuracy"] == 0.5 and not info["success"]


@pytest.mark.parametrize("family", FAMILIES)
def test_stream_mode_scores_only_answer_steps(family):
    env = RecallEnv(family, obs_mode="stream", levels=small_levels(family), level=1)
    env.reset(seed=2)
    target, answers = env._target, set(env._answers[:-1])
    total, steps, done = 0.0, 0, False
    while not done:
        # Writing the true next token is the perfect stream policy; off-answer actions are ignored.
        next_token = int(target[steps + 1])
        action = env.task.action_token_ids.index(next_token) if steps + 1 in answers else 0
        obs, reward, done, _, info = env.step(action)
        assert obs == target[steps + 1]
        assert reward == (pytest.approx(1 / len(answers)) if steps + 1 in answers else 0.0)
        total, steps = total + reward, steps + 1
    assert steps == len(target) - 1 and info["success"] and total == pytest.approx(1.0)


def _policy(task, mode, episode, step, tokens, length, num_actions) -> int:
    """A deterministic mix of right (oracle) and arbitrary answers, the same for both envs."""
    if mode == "sequence" and (episode + step) % 2 == 0:
        return oracle_action(task, tokens, length)
    return (7 * episode + 3 * step) % num_actions


def _single_trajectories(env, mode, seed, episodes):
    runs = []
    for j in range(episodes):
        obs, _ = env.reset(seed=seed if j == 0 else None)
        run, done, step = [_obs_key(obs, mode)], False, 0
        while not done:
            tokens, length = (obs["tokens"], obs["length"][0]) if mode == "sequence" else (None, None)
            action = _policy(env.task, mode, j, step, tokens, length, env.action_space.n)
            obs, reward, done, truncated, info = env.step(action)
            run.append(
                (
                    _obs_key(obs, mode),
                    round(reward, 6),
                    done,
                    truncated,
                    info["success"],
                    round(info["accuracy"], 6),
                )
            )
            step += 1
        runs.append(run)
    return runs


def _vector_first_episodes(vec, mode, seed, n):
    """Trajectories of the first episode of sub-envs 0..n-1 (the others step along with action 0)."""
    obs, _ = vec.reset(seed=seed)
    runs = [[_obs_key(_row(obs, i), mode)] for i in range(n)]
    finished = [False] * n
    step = 0
    while not all(finished):
        actions = []
        for i in range(n):
            row = _row(obs, i)
            tokens, length = (row["tokens"], row["length"][0]) if mode == "sequence" else (None, None)
            busy = not finished[i]
            actions.append(
                _policy(vec.task, mode, i, step, tokens, length, vec.single_action_space.n) if busy else 0
            )
        actions += [0] * (vec.num_envs - n)
        obs, reward, terminated, truncated, info = vec.step(torch.tensor(actions))
        for i in range(n):
            if not finished[i]:
                runs[i].append(
                    (
                        _obs_key(_row(obs, i), mode),
                        round(float(reward[i]), 6),
                        bool(terminated[i]),
                        bool(truncated[i]),
                        bool(info["success"][i]),
                        round(float(info["accuracy"][i]), 6),
                    )
                )
                finished[i] = bool(terminated[i])
        step += 1
    return runs


def _row(obs, i):
    return {k: v[i] for k, v in obs.items()} if isinstance(obs, dict) else obs[i]


def _obs_key(obs, mode):
    if mode == "stream":
        return int(obs)
    return (tuple(int(t) for t in obs["tokens"]), int(obs["length"][0]))


@pytest.mark.parametrize("mode", ["sequence", "stream"])
@pytest.mark.parametrize("family", FAMILIES)
def test_vector_and_single_envs_agree(family, mode):
    levels = small_levels(family)
    vec = RecallVectorEnv(EPISODE_BLOCK, family=family, obs_mode=mode, device="cpu", levels=levels, level=1)
    single = RecallEnv(family, obs_mode=mode, levels=levels, level=1)
    compared = 4 if family == "needle" else EPISODE_BLOCK  # needle episodes are long; 4 keep the test quick
    expected = _vector_first_episodes(vec, mode, seed=5, n=compared)
    assert _single_trajectories(single, mode, seed=5, episodes=compared) == expected
    rewards = [step[1] for run in expected for step in run[1:]]
    assert mode == "stream" or (max(rewards) > 0 and min(rewards) == 0)  # right and wrong answers both seen


@pytest.mark.parametrize("family", FAMILIES)
def test_vector_oracle_play_with_per_env_levels(family):
    num = 6
    vec = RecallVectorEnv(num, family=family, device="cpu", levels=small_levels(family), seed=0)
    vec.set_level(torch.tensor([0, 1] * (num // 2)))
    obs, info = vec.reset()
    assert torch.equal(info["level"], torch.tensor([0, 1] * (num // 2)))
    assert obs["tokens"].shape == (num, vec.task.max_length)
    returns = torch.zeros(num)
    finished = torch.zeros(num, dtype=torch.bool)
    successes = torch.zeros(num, dtype=torch.bool)
    for _ in range(vec.task.max_answers):
        actions = torch.tensor(
            [
                0 if finished[i] else oracle_action(vec.task, obs["tokens"][i], obs["length"][i, 0])
                for i in range(num)
            ]
        )
        obs, reward, terminated, truncated, info = vec.step(actions)
        returns += reward * ~finished
        successes |= info["success"] & terminated
        finished |= terminated
        assert not truncated.any()
    assert finished.all() and successes.all()
    assert torch.allclose(returns, torch.ones(num))


def test_vector_env_autoresets_and_keeps_levels():
    vec = RecallVectorEnv(4, family="copy", obs_mode="stream", device="cpu", seed=0)
    vec.set_level(2, env_ids=[1, 3])
    vec.reset()
    assert vec.get_level().tolist() == [0, 2, 0, 2]
    terminated_seen = torch.zeros(4, dtype=torch.long)
    for _ in range(40):
        _, reward, terminated, _, _ = vec.step(torch.zeros(4, dtype=torch.long))
        terminated_seen += terminated.long()
        assert ((reward >= 0) & (reward <= 1)).all()
    # Level 0 episodes take 2 steps, level 2 (length 4) take 8; next-step autoreset adds one step each.
    assert terminated_seen.tolist() == [13, 4, 13, 4]


def test_make_vec_and_sb3_adapter():
    vec = gym.make_vec(
        "mindgym/AssociativeRecall-v0",
        num_envs=3,
        vectorization_mode="vector_entry_point",
        obs_mode="stream",
        device="cpu",
        seed=1,
    )
    assert isinstance(vec, RecallVectorEnv) and vec.task.family.name == "associative"
    adapter = SB3VecEnvAdapter(vec)
    obs = adapter.reset()
    assert obs.shape == (3,)
    dones = 0
    for _ in range(10):
        obs, reward, done, infos = adapter.step(np.zeros(3, dtype=np.int64))
        assert obs.shape == (3,) and reward.shape == (3,)
        for i in np.flatnonzero(done):
            assert "terminal_observation" in infos[i] and "is_success" in infos[i]
            dones += 1
    assert dones > 0


def test_sb3_adapter_in_sequence_mode_returns_dict_observations():
    adapter = SB3VecEnvAdapter(RecallVectorEnv(2, family="copy", device="cpu", seed=0))
    obs = adapter.reset()
    assert obs["tokens"].shape == (2, 513) and obs["length"].tolist() == [[2], [2]]
    _, reward, done, infos = adapter.step(np.zeros(2, dtype=np.int64))
    assert done.all() and infos[0]["terminal_observation"]["length"][0] == 3
    assert reward.tolist() == [float(info["is_success"]) for info in infos]


def test_make_vec_sync_mode_wraps_single_envs():
    vec = gym.make_vec("mindgym/RepeatCopy-v0", num_envs=2, vectorization_mode="sync", obs_mode="sequence")
    obs, info = vec.reset(seed=0)
    assert obs["tokens"].shape == (2, RecallEnv("repeat_copy").task.max_length) and info[
        "level"
    ].tolist() == [0, 0]
    vec.close()


def test_numpy_output_and_set_attr_level():
    vec = RecallVectorEnv(2, family="repeat_copy", device="cpu", numpy=True, seed=0)
    vec.set_attr("level", "len2-v4-x2")
    obs, info = vec.reset()
    assert isinstance(obs["tokens"], np.ndarray) and info["level"].tolist() == [1, 1]
    assert obs["length"][:, 0].tolist() == [4, 4]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: RecallEnv("copy", obs_mode="chunks"), "Unknown recall obs_mode"),
        (lambda: RecallEnv("copy", render_mode="human"), "render_mode"),
        (lambda: RecallEnv("copy").reset(options={"level": 2}), "set_level"),
        (
            lambda: RecallVectorEnv(2, family="copy", device="cpu").set_level(
                {"name": "huge", "length": 999, "vocab": 2}
            ),
            "levels=",
        ),
        (lambda: RecallVectorEnv(2, family="copy", device="cpu").step(torch.tensor([0.5, 1.0])), "integer"),
        (
            lambda: RecallVectorEnv(2, family="copy", device="cpu").set_level(torch.tensor([0, 99])),
            r"\[0, 8\]",
        ),
        (lambda: RecallVectorEnv(2, family="copy", device="cpu").step(np.array([0, 64])), r"\[0, 63\]"),
    ],
)
def test_bad_env_input_raises_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_set_level_applies_from_the_next_episode():
    env = RecallEnv("copy", level=2)
    env.reset(seed=0)
    env.set_level("len16-v16")
    _, _, _, _, info = env.step(0)
    assert info["level"] == 2
    obs, info = env.reset()
    assert info["level"] == 4 and obs["length"][0] == 17


def test_single_env_rejects_bad_actions():
    env = RecallEnv("copy")
    env.reset(seed=0)
    for action in (64, -1, 1.0, "a"):
        with pytest.raises(ValueError, match=r"\[0, 63\]"):
            env.step(action)


def test_ansi_render_shows_the_prompt():
    env = RecallEnv("needle", levels=small_levels("needle"), render_mode="ansi")
    env.reset(seed=0)
    assert "The secret number is" in env.render() and "Question" in env.render()


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["sequence", "stream"])
@pytest.mark.parametrize("family", FAMILIES)
def test_vector_env_steps_on_cuda_without_host_sync(family, mode):
    vec = RecallVectorEnv(
        64, family=family, obs_mode=mode, device="cuda", levels=small_levels(family), seed=0
    )
    vec.set_level(torch.arange(64, device="cuda") % 2)
    obs, _ = vec.reset()
    actions = torch.zeros(64, dtype=torch.long, device="cuda")
    vec.step(actions)  # first step builds cached device constants
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any host sync inside step raises
    try:
        for _ in range(20):
            obs, reward, _, _, info = vec.step(actions)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert (obs["tokens"] if mode == "sequence" else obs).device.type == "cuda"
    assert info["success"].device.type == "cuda"
    assert ((reward >= 0) & (reward <= 1)).all()

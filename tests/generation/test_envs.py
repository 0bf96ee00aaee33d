"""The generation envs: both checkers, make/make_vec, the observation window, levels, single == vector."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs  # noqa: F401  (registers the env ids)
from envs.common.sb3 import SB3VecEnvAdapter
from envs.generation.env import TextQualityEnv
from envs.generation.tokens import PAD_ID, decode
from envs.generation.vector import TextQualityVectorEnv

ENV_ID = "mindgym/TextQuality-v0"


@pytest.mark.parametrize("dense", [False, True])
def test_single_env_passes_both_checkers(dense):
    env = gym.make(ENV_ID, dense=dense, level="p64-c16")
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=False)


def test_episode_info_and_render():
    env = gym.make(ENV_ID, render_mode="ansi", level="p64-c16")
    obs, info = env.reset(seed=0)
    assert obs["length"][0] == 64 and (obs["tokens"][64:] == PAD_ID).all()
    for _ in range(16):
        obs, reward, terminated, truncated, info = env.step(ord("x"))
    assert terminated and not truncated and obs["length"][0] == 80
    assert {"fluency", "diversity", "repetition", "length", "seq_rep_4", "success", "level"} <= set(info)
    assert info["success"] is False and info["level"] == 0 and reward == pytest.approx(info["score"])
    assert env.render().endswith("|" + "x" * 16)


def test_single_and_vector_envs_agree():
    single = TextQualityEnv(level="p64-c16", dense=True)
    vector = gym.make_vec(
        ENV_ID,
        num_envs=1,
        vectorization_mode="vector_entry_point",
        device="cpu",
        level="p64-c16",
        dense=True,
        numpy=True,
    )
    obs_s, _ = single.reset(seed=11)
    obs_v, _ = vector.reset(seed=11)
    np.testing.assert_array_equal(obs_s["tokens"], obs_v["tokens"][0])
    for byte in b"the cat sat":
        obs_s, r_s, *_ = single.step(byte)
        obs_v, r_v, *_ = vector.step(np.array([byte]))
        assert r_s == pytest.approx(float(r_v[0]), abs=1e-6)  # float64 against float32 scores
    np.testing.assert_array_equal(obs_s["tokens"], obs_v["tokens"][0])


def test_window_keeps_the_most_recent_bytes():
    env = TextQualityVectorEnv(
        2,
        device="cpu",
        level={"name": "long", "prompt_length": 300, "continuation_length": 8},
        window=64,
        seed=0,
    )
    obs, _ = env.reset(seed=0)
    assert (obs["length"] == 64).all() and (obs["tokens"] != PAD_ID).all()
    first = obs["tokens"].clone()
    obs, *_ = env.step(torch.tensor([ord("Q"), ord("Z")]))
    assert (obs["length"] == 64).all()
    assert torch.equal(obs["tokens"][:, :-1], first[:, 1:]) and obs["tokens"][:, -1].tolist() == [81, 90]
    assert decode(obs["tokens"][0]).endswith("Q")


def test_per_env_levels_and_custom_levels():
    env = TextQualityVectorEnv(4, device="cpu", seed=0)
    env.set_level("p32-c128", env_ids=[1, 3])
    obs, _ = env.reset(seed=0)
    assert obs["length"][:, 0].tolist() == [64, 32, 64, 32]
    env.set_level({"name": "huge", "prompt_length": 8, "continuation_length": 400})
    env.reset(seed=1)
    for _ in range(300):
        _, _, terminated, _, info = env.step(torch.randint(97, 123, (4,)))
        assert not terminated.any()
    assert (info["bytes_written"] == 300).all() and (info["level"] == env.task.ladder.index("huge")).all()


def test_bad_actions_and_options_raise():
    env = TextQualityVectorEnv(2, device="cpu", seed=0)
    env.reset()
    with pytest.raises(ValueError, match="lie in"):
        env.step(np.array([3, 256]))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.array([3]))
    with pytest.raises(ValueError, match="prompt_split"):
        TextQualityVectorEnv(2, device="cpu", prompt_split="dev")
    with pytest.raises(ValueError, match="reset option"):
        TextQualityEnv().reset(options={"level": 2})


def test_sb3_adapter_runs_the_vector_env():
    adapter = SB3VecEnvAdapter(TextQualityVectorEnv(3, device="cpu", level="p64-c16", seed=0))
    obs = adapter.reset()
    assert obs["tokens"].shape == (3, 256)
    for _ in range(16):
        obs, _, dones, infos = adapter.step(np.full(3, ord("a")))
    assert dones.all() and "fluency" in infos[0]


@pytest.mark.gpu
def test_vector_env_steps_on_cuda_without_host_sync():
    env = TextQualityVectorEnv(
        64, device="cuda", level="p64-c16", seed=0, dense=True, reward_weights={"batch_diversity": 0.5}
    )
    env.reset(seed=0)
    actions = torch.randint(32, 127, (20, 64), device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for t in range(20):
            obs, reward, _, _, info = env.step(actions[t])
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert obs["tokens"].device.type == "cuda" and reward.device.type == "cuda"
    assert torch.isfinite(reward).all() and info["success"].dtype == torch.bool


def _seq_rep(text: bytes, n: int) -> float:
    grams = [text[i : i + n] for i in range(len(text) - n + 1)]
    return sum(g in grams[:i] for i, g in enumerate(grams)) / len(grams)


def test_step_by_step_reward_matches_whole_text_scoring():
    env = TextQualityVectorEnv(3, device="cpu", level="p64-c32", seed=4, reward_weights={"diversity": 0.3})
    obs, _ = env.reset(seed=4)
    prompts = obs["tokens"][:, :64].clone()
    written = torch.tensor(
        [
            list(b"the the the the the the the the "),
            list(b"Return the value of x, or raise "),
            list(b"zq#~" * 8),
        ]
    )
    for t in range(32):
        obs, _, terminated, _, info = env.step(written[:, t])
    assert terminated.all()
    scorer = env.task.scorer
    full_bits = scorer.token_bits(torch.cat([prompts, written], dim=1))[:, 64:]
    assert torch.allclose(info["bits_per_byte"], full_bits.mean(dim=1), atol=1e-4)
    for row in range(3):
        text = bytes(written[row].tolist())
        assert float(info["seq_rep_4"][row]) == pytest.approx(_seq_rep(text, 4))
        assert float(info["distinct_2"][row]) == pytest.approx(1 - _seq_rep(text, 2))
    assert info["score"][1] > info["score"][0] and info["score"][1] > info["score"][2]


def test_reset_with_a_seed_is_reproducible():
    env = TextQualityVectorEnv(4, device="cpu", seed=0)
    first, _ = env.reset(seed=123)
    env.step(torch.full((4,), 97))
    again, _ = env.reset(seed=123)
    assert torch.equal(first["tokens"], again["tokens"])
    other, _ = env.reset(seed=124)
    assert not torch.equal(first["tokens"], other["tokens"])


def test_making_an_env_leaves_torch_global_generator_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    gym.make(ENV_ID)
    TextQualityVectorEnv(2, device="cpu")
    assert torch.equal(torch.rand(3), expected)


def test_env_on_a_local_corpus_folder(tmp_path):
    from envs.generation.corpus import default_corpus

    for i, document in enumerate(default_corpus().test):
        (tmp_path / f"doc{i}.txt").write_text(document)
    env = gym.make(ENV_ID, corpus=str(tmp_path), level="p64-c16", order=5, cache_dir=str(tmp_path / "cache"))
    obs, _ = env.reset(seed=0)
    assert env.unwrapped.task.corpus.name == str(tmp_path) and obs["length"][0] == 64
    for _ in range(16):
        *_, terminated, _, info = env.step(ord("a"))
    assert terminated and info["fluency"] <= 1.0
    assert list((tmp_path / "cache" / "generation").glob("ngram-*-o5-*.pt"))
    with pytest.raises(TypeError, match="corpus must be"):
        TextQualityVectorEnv(1, device="cpu", corpus=["not", "a", "corpus"])


@pytest.mark.parametrize(
    "options",
    [
        {"level": "p64-c64", "dense": True},
        {"level": "p16-c256", "dense": False, "reward_weights": {"batch_diversity": 0.5}},
        {"level": {"name": "wide", "prompt_length": 40, "continuation_length": 300}, "window": 64},
    ],
)
def test_single_env_fast_path_equals_the_vector_env_over_whole_episodes(options):
    """The single env steps in plain Python; every observation, reward and info value must equal the vector
    env's (to float32 rounding) through episodes of English, loops, random bytes and an early stop."""
    single = TextQualityEnv(**options)
    vector = TextQualityVectorEnv(1, device="cpu", autoreset_mode="disabled", **options)
    generator = torch.Generator().manual_seed(0)
    english = list(b"The judge reads every byte and says how likely a reader would find it. " * 5)
    episodes = [
        english,
        list(b"la " * 120),
        torch.randint(0, 256, (400,), generator=generator).tolist(),
        [*english[:9], 0],  # stops early at the end-of-text byte
    ]
    for seed, actions in enumerate(episodes):
        obs_s, info_s = single.reset(seed=seed)
        obs_v, info_v = vector.reset(seed=seed)
        for action in actions:
            obs_s, r_s, term_s, _, info_s = single.step(action)
            obs_v, r_v, term_v, _, info_v = vector.step(torch.tensor([action]))
            assert r_s == pytest.approx(float(r_v[0]), abs=2e-5) and term_s == bool(term_v[0])
            np.testing.assert_array_equal(obs_s["tokens"], obs_v["tokens"][0].numpy())
            assert obs_s["length"][0] == int(obs_v["length"][0])
            if term_s:
                break
        assert set(info_s) == set(info_v)
        for key, value in info_s.items():
            assert value == pytest.approx(float(info_v[key][0]), abs=2e-5), key

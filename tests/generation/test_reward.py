"""The reward: components ordered as a user expects, repetition punished monotonically, dense == sparse."""

import pytest
import torch

from envs.generation.corpus import default_corpus
from envs.generation.reward import RewardConfig, score_continuations
from envs.generation.task import TextQualityTask
from envs.generation.tokens import encode
from envs.generation.vector import TextQualityVectorEnv


@pytest.fixture(scope="module")
def held_out():
    text = encode(default_corpus().text("validation"))
    starts = torch.randint(0, len(text) - 128, (32,), generator=torch.Generator().manual_seed(1))
    windows = text[starts[:, None] + torch.arange(128)]
    return windows[:, :64], windows[:, 64:]


def _score(prompts, continuations, **config):
    task = TextQualityTask()
    return score_continuations(task.scorer, task.calibration, prompts, continuations, RewardConfig(**config))


def test_more_repetition_gives_lower_reward(held_out):
    prompts, real = held_out
    half_repeated = torch.cat([real[:, :32], real[:, :32]], dim=1)
    loop = real[:, :8].repeat(1, 8)
    n = len(real)
    scores = _score(prompts.repeat(3, 1), torch.cat([real, half_repeated, loop]))
    seq_rep, score = scores["seq_rep_4"].split(n), scores["score"].split(n)
    assert (seq_rep[0] < seq_rep[1]).all() and (seq_rep[1] < seq_rep[2]).all()
    assert (score[0] > score[1]).all() and (score[1] > score[2]).all()
    # a larger repetition weight widens the gap between repetitive and real text
    gaps = []
    for weight in (0.5, 1.0, 4.0):
        both = _score(prompts.repeat(2, 1), torch.cat([real, half_repeated]), weights={"repetition": weight})
        gaps.append(float((both["score"][:n] - both["score"][n:]).mean()))
    assert 0 < gaps[0] < gaps[1] < gaps[2]


def test_components_rank_real_text_above_noise_and_mark_success(held_out):
    prompts, real = held_out
    noise = torch.randint(0, 256, real.shape, generator=torch.Generator().manual_seed(2))
    real_score, noise_score = _score(prompts, real), _score(prompts, noise)
    assert real_score["fluency"].mean() > 0.8 and (noise_score["fluency"] < 0).all()
    assert (real_score["score"] > noise_score["score"]).all()
    assert real_score["success"].float().mean() > 0.5 and not noise_score["success"].any()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"weights": {"fluency": 0, "word_order": 0, "diversity": 0, "repetition": 0, "length": 0}},
            "constant",
        ),
        (
            {"weights": {"fluency": 0, "word_order": 0, "diversity": 0, "repetition": 0}, "eos_byte": None},
            "constant",
        ),
        ({"weights": {"fluency": -1}}, "finite and >= 0"),
        ({"weights": {"style": 1}}, "Unknown reward component"),
        ({"repetition_n": 9}, "repetition_n"),
        ({"success_fraction": 0}, "success_fraction"),
        ({"eos_byte": 300}, "eos_byte"),
    ],
)
def test_bad_reward_configs_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RewardConfig(**kwargs)


def test_dense_rewards_sum_to_the_sparse_reward():
    actions = torch.randint(32, 127, (20, 8), generator=torch.Generator().manual_seed(3))
    actions[:, 5] = ord("e")  # some repetition
    returns = []
    for dense in (False, True):
        env = TextQualityVectorEnv(8, device="cpu", level="p64-c16", seed=5, dense=dense)
        env.reset(seed=5)
        total = torch.zeros(8)
        for t in range(16):
            _, reward, terminated, _, info = env.step(actions[t])
            total += reward
        assert terminated.all()
        returns.append((total, info["score"]))
    (sparse_total, sparse_score), (dense_total, dense_score) = returns
    assert torch.allclose(sparse_total, sparse_score) and torch.allclose(dense_total, dense_score, atol=1e-5)
    assert torch.allclose(sparse_total, dense_total, atol=1e-5)


def test_end_of_text_byte_stops_early_with_partial_length():
    env = TextQualityVectorEnv(2, device="cpu", level="p64-c32", seed=0)
    env.reset(seed=0)
    for _ in range(4):
        env.step(torch.tensor([ord("a"), ord("b")]))
    _, reward, terminated, _, info = env.step(torch.tensor([0, ord("c")]))
    assert terminated.tolist() == [True, False]
    # length is a penalty: minus the share of the continuation left unwritten (0 for a full one)
    assert info["length"][0] == pytest.approx(4 / 32 - 1) and info["bytes_written"].tolist() == [4, 5]
    assert reward[0] == pytest.approx(float(info["score"][0])) and reward[1] == 0


def test_batch_diversity_counts_ngrams_no_other_sub_env_holds():
    env = TextQualityVectorEnv(
        4, device="cpu", level="p64-c32", seed=0, reward_weights={"batch_diversity": 1.0}
    )
    env.reset(seed=0)
    texts = [b"abcdefghijkl", b"abcdefghijkl", b"mnopqrstuvwx", b"ABCDEFGHIJKL"]
    for t in range(9):
        _, _, _, _, info = env.step(torch.tensor([text[t] for text in texts]))
    assert info["batch_diversity"].tolist() == [0.0, 0.0, 1.0, 1.0]
    _, _, terminated, _, info = env.step(torch.tensor([0, *(text[9] for text in texts[1:])]))
    assert terminated.tolist() == [True, False, False, False]
    assert float(info["batch_diversity"][1]) == pytest.approx(1 / 7)  # only its new 4-gram "ghij" is its own
    # the next step starts a new episode in sub-env 0, whose n-grams leave the batch table
    _, _, _, _, info = env.step(torch.tensor([ord("z"), *(text[10] for text in texts[1:])]))
    assert info["batch_diversity"].tolist() == [0.0, 1.0, 1.0, 1.0] and info["bytes_written"][0] == 0
    assert "batch_diversity" not in TextQualityVectorEnv(1, device="cpu").reset()[1]

"""Engine features (issue #27): what each family's conditioned engine reads, carried through rollouts and
RL updates, and an engine trained on a deterministic oracle task converging towards greedy decoding."""

import pytest
import torch

from agents.dual import DualAgent, RLConfig, SupervisedConfig
from agents.engine import InferenceEngine
from agents.engine_features import EngineFeatures, for_family
from agents.rollout import BackbonePolicy, rollout
from envs.generation.task import TextLevel, TextQualityTask
from envs.generation.vector import TextQualityVectorEnv
from envs.maze import MazeTask
from envs.maze.vector import MazeVectorEnv
from envs.recall.task import RecallTask
from envs.recall.vector import RecallVectorEnv
from tests.agents.echo_env import EchoVectorEnv
from tests.agents.fixtures import EchoTask, make_backbone


def _step_fraction(env, obs, mask):
    """Echo env: how far into its episode each sub-env is."""
    return (env.length.float() / env.horizon).unsqueeze(1)


ECHO_FEATURES = EngineFeatures("echo", 1, _step_fraction)


def test_recall_features_give_the_position_in_the_answer():
    task = RecallTask.from_spec("copy", ["len4-v8"])
    env = RecallVectorEnv(3, task=task, device="cpu", obs_mode="sequence", seed=0)
    obs, _ = env.reset(seed=0)
    features = for_family("copy")
    seen = [features(env, obs, None)]
    for _ in range(3):
        obs, *_ = env.step(torch.zeros(3, dtype=torch.long))
        seen.append(features(env, obs, None))
    position = torch.stack([f[:, 0] for f in seen])
    assert torch.allclose(position, torch.tensor([0.0, 0.25, 0.5, 0.75]).unsqueeze(1).expand(4, 3))
    assert seen[-1][:, 1].eq(1).all() and seen[0][:, 1].eq(0).all()  # the last answer is flagged


def test_maze_features_are_the_legal_moves():
    env = MazeVectorEnv(4, task=MazeTask.from_spec(["5x5"]), device="cpu", obs_mode="tokens", seed=0)
    obs, _ = env.reset(seed=0)
    out = for_family("maze")(env, obs, None)
    legal = env.action_masks().float()
    assert torch.equal(out[:, :4], legal)
    assert torch.allclose(out[:, 4], legal.mean(dim=1))


def test_unknown_family_names_the_choices():
    with pytest.raises(ValueError, match="maze"):
        for_family("chess")


def test_conditioned_engine_reads_its_features_and_refuses_to_run_without_them():
    torch.manual_seed(0)
    task = EchoTask()
    backbone = make_backbone(task.vocab_size)
    engine = InferenceEngine.for_backbone(backbone, task.action_token_ids, conditioned=True, n_features=1)
    torch.nn.init.normal_(engine.condition[-1].weight, std=1.0)
    tokens = torch.randint(2, 12, (2, 5))
    length = torch.full((2, 1), 5)
    same_rows = torch.cat([tokens[:1], tokens[:1]])
    engine(backbone, same_rows, length, features=torch.tensor([[0.0], [1.0]]))
    temperature = engine._last["temperature"]
    assert temperature[0] != temperature[1]  # same context, different features: different decoding
    with pytest.raises(ValueError, match="features"):
        engine(backbone, tokens, length)
    with pytest.raises(ValueError, match="features="):
        DualAgent(backbone, engine, task, device="cpu")


@pytest.mark.parametrize("algorithm", ["reinforce", "ppo"])
def test_rl_update_keeps_features_and_trains_the_heads_feature_weights(algorithm):
    torch.manual_seed(0)
    task = EchoTask()
    backbone = make_backbone(task.vocab_size)
    engine = InferenceEngine.for_backbone(backbone, task.action_token_ids, conditioned=True, n_features=1)
    rl = RLConfig(algorithm=algorithm, lr=0.05, rollout_steps=5, ppo_epochs=2, condition_lr_scale=1.0)
    agent = DualAgent(backbone, engine, task, rl=rl, device="cpu", features=ECHO_FEATURES)
    env = EchoVectorEnv(8)
    policy = agent.policy()
    out = rollout(env, policy, seed=0, steps=5, keep_transitions=True)
    assert out.transitions.features.shape == (5, 8, 1)
    assert out.transitions.mask is None
    first_layer = engine.condition[1].weight
    before = first_layer[:, -1].detach().clone()  # the column that reads the feature
    agent.rl_step(env)
    assert not torch.equal(first_layer[:, -1].detach(), before)


def test_masked_rl_rollouts_take_legal_moves_and_keep_the_mask():
    torch.manual_seed(0)
    task = MazeTask.from_spec(["5x5"])
    backbone = make_backbone(task.vocab_size, max_len=256)
    features = for_family("maze")
    engine = InferenceEngine.for_backbone(
        backbone, task.action_token_ids, conditioned=True, n_features=features.size
    )
    env = MazeVectorEnv(6, task=task, device="cpu", obs_mode="tokens", seed=0)
    agent = DualAgent(
        backbone,
        engine,
        task,
        rl=RLConfig(rollout_steps=6),
        device="cpu",
        mask_invalid=True,
        features=features,
    )
    out = rollout(env, agent.policy(), seed=0, steps=6, keep_transitions=True)
    batch = out.transitions
    assert batch.mask.shape == (6, 6, 4)
    assert batch.mask.gather(2, batch.actions.unsqueeze(-1)).all()  # every move taken was legal
    assert torch.isfinite(batch.log_probs).all()
    metrics = agent.rl_step(env)
    assert torch.isfinite(metrics["rl/loss"])


def _reward_per_step(agent, env, greedy: bool, seed: int) -> float:
    policy = BackbonePolicy(
        agent.backbone, agent.engine, greedy=greedy, generator=torch.Generator().manual_seed(seed)
    )
    out = rollout(env, policy, seed=seed, steps=8, keep_transitions=True)
    return float(out.transitions.rewards[out.transitions.valid].mean())


def test_engine_on_a_deterministic_oracle_task_converges_towards_greedy():
    """Echo has one right answer a step: the reward can only teach the engine to sharpen its sampling
    (temperature down), never to do better than the arg-max, and it must not lose what greedy gets."""
    torch.manual_seed(0)
    task = EchoTask()
    backbone = make_backbone(task.vocab_size)
    engine = InferenceEngine.for_backbone(backbone, task.action_token_ids, temperature=1.5)
    sup = SupervisedConfig(lr=3e-3, warmup_steps=2, total_steps=400, batch_size=32)
    rl = RLConfig(lr=0.05, rollout_steps=8, entropy_coef=0.0)
    agent = DualAgent(backbone, engine, task, sup, rl, seed=0, device="cpu")
    for _ in range(60):  # an imperfect backbone: greedy right, sampling at T=1.5 often wrong
        agent.supervised_step()
    env = EchoVectorEnv(32, horizon=8)
    greedy = _reward_per_step(agent, env, greedy=True, seed=1)
    sampled_before = _reward_per_step(agent, env, greedy=False, seed=1)
    start = float(engine.temperature().detach())
    for _ in range(40):
        agent.rl_step(env)
    sampled_after = _reward_per_step(agent, env, greedy=False, seed=1)
    assert greedy > sampled_before + 0.05, "the test needs a backbone whose samples are worse than greedy"
    assert float(engine.temperature()) < start - 0.3
    assert sampled_after > sampled_before
    assert sampled_after >= greedy - 0.1, (greedy, sampled_before, sampled_after)


def _seq_rep(text: bytes, n: int) -> float:
    grams = [text[i : i + n] for i in range(len(text) - n + 1)]
    return sum(g in grams[:i] for i, g in enumerate(grams)) / max(len(grams), 1)


def _distinct(text: bytes, n: int) -> float:
    grams = [text[i : i + n] for i in range(len(text) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 1.0


def test_text_running_features_equal_a_direct_computation_on_known_text():
    """v2's running features, step by step, against seq-rep-4, distinct-2, the newest 4-gram's repeat and
    the judge's bits computed directly from the bytes written (a loop and English, side by side)."""
    env = TextQualityVectorEnv(2, device="cpu", levels=[TextLevel("t", 16, 12)], window=28, seed=0)
    obs, _ = env.reset(seed=0)
    texts = [b"abcabcabcabc", b"the quick br"]
    features = for_family("generation")
    assert features.version == 2 and features.size == 7
    first = features(env, obs, None)
    assert torch.equal(first[:, 2:], torch.tensor([[0.0, 1.0, 0.0, 0.0, 0.0]] * 2))
    for t in range(12):
        obs, *_ = env.step(torch.tensor([texts[0][t], texts[1][t]]))
        if t == 11:
            break  # the last byte ends the episode; its obs is the autoreset's
        got = features(env, obs, None)
        bits = env.task.scorer.token_bits(obs["tokens"])[:, 16 : 17 + t]  # the continuation's bytes
        for row, text in enumerate(texts):
            written = text[: t + 1]
            expected = [
                (t + 1) / 12,
                float(t + 1 == 11),
                _seq_rep(written, 4),
                _distinct(written, 2),
                float(len(written) >= 4 and written[-4:] in written[:-1]),
                float(bits[row].mean()) / 8,
                float(bits[row, -1]) / 8,
            ]
            assert torch.allclose(got[row], torch.tensor(expected), atol=1e-5), (t, row, got[row], expected)
    assert got[0, 4] == 1 and got[1, 4] == 0  # the loop is flagged, the English is not


def test_engine_input_width_follows_the_text_feature_set_and_old_checkpoints_fail_clearly():
    task = TextQualityTask(levels=[TextLevel("t", 16, 8)], window=24)
    backbone = make_backbone(task.vocab_size, max_len=24)
    engines = {}
    for version in (1, 2):
        features = for_family("text", version=version)
        engines[version] = InferenceEngine.for_backbone(
            backbone, task.action_token_ids, conditioned=True, n_features=features.size
        )
        assert engines[version].condition[0].normalized_shape == (backbone.d_model + features.size,)
    env = TextQualityVectorEnv(3, task=task, device="cpu", seed=0)
    policy = BackbonePolicy(backbone, engines[2], features=for_family("text"))
    out = rollout(env, policy, seed=0, steps=8, keep_transitions=True)
    assert out.transitions.features.shape == (8, 3, 7)
    with pytest.raises(ValueError, match="reads 2 features a step, this one 7"):
        engines[2].load_state_dict(engines[1].state_dict())
    engines[1].load_state_dict(engines[1].state_dict())  # the v1 set loads a v1 engine
    with pytest.raises(ValueError, match=r"versions are \[1, 2\]"):
        for_family("text", version=3)

"""bench.engine_decoding: the conditioned engine (d) is built and trained with the options the bench names
(--feature-offsets, --rl-gamma, --select-every), at tiny settings on the CPU."""

import math

import pytest
import torch

from bench.engine_decoding import (
    FixedDecoding,
    ValidationSelector,
    conditioned_features,
    episode_values,
    make_env,
    paired_t,
    parse_args,
    run_seed,
    train_backbone,
    train_engine,
)

TINY = ["--device", "cpu", "--prompt-length", "8", "--continuation-length", "6", "--d-model", "16"]
TINY += ["--layers", "1", "--heads", "2", "--sup-steps", "2", "--batch-size", "4", "--envs", "4"]


def _tiny_backbone(extra: list[str]):
    args = parse_args([*TINY, *extra])
    args.seed = 0
    device = torch.device("cpu")
    env = make_env(args, "train", args.envs, device, dense=True)
    backbone, _ = train_backbone(args, env, device)
    return args, env, backbone, device


def _engine(extra: list[str]):
    args, env, backbone, device = _tiny_backbone(extra)
    features = conditioned_features(args)
    engine = train_engine(args, backbone, env, device, True, (0.5, 0.8, 1.0), features)
    return args, engine


def test_feature_offsets_are_trained_from_zero_when_asked():
    args, engine = _engine(["--rl-steps", "2", "--feature-offsets", "--rl-gamma", "0.9"])
    assert args.rl_gamma == 0.9
    assert engine.feature_offsets is not None
    assert engine.feature_offsets.weight.shape == (2, conditioned_features(args).size)
    assert engine.feature_offsets.weight.abs().sum() > 0  # two RL steps moved it off zero
    assert engine.metrics()["engine/temperature"] != 0.5  # the knobs still learn beside it


def test_without_the_flag_the_conditioned_engine_is_the_recorded_one():
    args, engine = _engine(["--rl-steps", "1"])
    assert engine.feature_offsets is None and args.rl_gamma == 1.0


def test_feature_offsets_without_features_are_refused_naming_the_flag(capsys):
    with pytest.raises(SystemExit):
        parse_args([*TINY, "--features", "none", "--feature-offsets"])
    assert "--features none" in capsys.readouterr().err


def test_group_size_trains_both_engines_against_other_samples_of_the_same_prompt():
    args = parse_args([*TINY, "--rl-steps", "1", "--group-size", "2"])
    args.seed = 0
    device = torch.device("cpu")
    env = make_env(args, "train", args.envs, device, dense=True, group_size=args.group_size)
    prompts = env.reset(seed=0)[0]["tokens"][:, : args.prompt_length]
    assert torch.equal(prompts[0], prompts[1]) and torch.equal(prompts[2], prompts[3])
    backbone, _ = train_backbone(args, env, device)
    engine = train_engine(args, backbone, env, device, False, (1.0, 0.9, 1.0))  # refused if not grouped
    assert engine.metrics()["engine/temperature"] != 1.0


def test_a_group_size_that_does_not_divide_the_envs_is_refused_naming_both_flags(capsys):
    with pytest.raises(SystemExit):
        parse_args([*TINY, "--group-size", "3"])
    assert "--group-size 3 must be >= 1 and divide --envs 4" in capsys.readouterr().err


def test_the_conditioned_engine_starts_the_same_whatever_ran_before_it():
    args, env, backbone, device = _tiny_backbone(["--rl-steps", "1", "--feature-offsets"])
    features = conditioned_features(args)
    first = train_engine(args, backbone, env, device, True, (0.5, 0.8, 1.0), features)
    torch.rand(1000)  # what ran before (training a backbone instead of loading it, (c)) moved torch's stream
    after = train_engine(args, backbone, env, device, True, (0.5, 0.8, 1.0), features)
    for a, b in zip(first.state_dict().values(), after.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_a_fluency_floor_steers_the_conditioned_engine_once_its_rollouts_fall_short():
    args, env, backbone, device = _tiny_backbone(["--rl-steps", "2", "--fluency-floor"])
    assert args.fluency_floor
    features = conditioned_features(args)
    free = train_engine(args, backbone, env, device, True, (0.5, 0.8, 1.0), features)
    floored = train_engine(args, backbone, env, device, True, (0.5, 0.8, 1.0), features, fluency_floor=5.0)
    # the first update is the free one's (multiplier 0); the second weighs the unreachable fluency floor
    assert free.metrics()["engine/temperature"] != floored.metrics()["engine/temperature"]


def _selector(args, backbone, device, features, split: str = "validation"):
    env = make_env(args, split, args.select_prompts, device, dense=False)
    reference = FixedDecoding([(0.5, 0.8, 1.0)], env.num_envs, env, device)
    return ValidationSelector(backbone, env, reference, args.seed + 13, features)


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_selection_restores_the_snapshot_of_the_selected_step_and_leaves_training_unchanged():
    extra = ["--rl-steps", "3", "--select-every", "1", "--select-prompts", "4", "--feature-offsets"]
    args, env, backbone, device = _tiny_backbone(extra)
    features = conditioned_features(args)
    selector = _selector(args, backbone, device, features)
    engine = train_engine(args, backbone, env, device, True, (0.5, 0.8, 1.0), features, selector=selector)
    assert [row["step"] for row in selector.history] == [0, 1, 2, 3]
    assert all(torch.equal(engine.state_dict()[k], v) for k, v in selector.best_state.items())
    args.rl_steps = selector.best["step"]  # the same training stopped there, with no selection at all
    stopped = train_engine(args, backbone, env, device, True, (0.5, 0.8, 1.0), features)
    assert _same_state(engine, stopped)


def test_selection_keeps_an_earlier_step_that_scores_best(monkeypatch):
    args, env, backbone, device = _tiny_backbone(
        ["--rl-steps", "4", "--select-every", "1", "--select-prompts", "4"]
    )
    features = conditioned_features(args)
    spread = torch.tensor([0.01, -0.01, 0.01, -0.01])  # each candidate's per-prompt spread around (b)
    # (b), then steps 0-4 in units of the spread's standard error: min(t reward, t fluency) peaks at
    # step 2; steps 3 and 4 gain more reward but less fluency
    gains = iter([None, (0.0, 0.0), (0.1, 0.1), (0.3, 0.3), (0.9, 0.1), (0.9, 0.2)])

    def scripted(*_args, **_kwargs):
        gain = next(gains)
        if gain is None:
            return {"score": torch.zeros(4), "fluency": torch.zeros(4)}, 4
        return {"score": gain[0] + spread, "fluency": gain[1] + spread}, 4

    monkeypatch.setattr("bench.engine_decoding.episode_values", scripted)
    selector = _selector(args, backbone, device, features)
    engine = train_engine(args, backbone, env, device, True, (0.5, 0.8, 1.0), features, selector=selector)
    monkeypatch.undo()
    assert selector.best["step"] == 2 and [round(row["reward"], 6) for row in selector.history][2] == 0.3
    args.select_every, args.rl_steps = 0, 2
    at_two = train_engine(args, backbone, env, device, True, (0.5, 0.8, 1.0), features)
    args.rl_steps = 4
    at_four = train_engine(args, backbone, env, device, True, (0.5, 0.8, 1.0), features)
    assert _same_state(engine, at_two) and not _same_state(engine, at_four)


def test_selection_on_test_prompts_is_refused_naming_the_split():
    args, _, backbone, device = _tiny_backbone(["--select-every", "1", "--select-prompts", "4"])
    with pytest.raises(ValueError, match="'test' prompts; build its env with split 'validation'"):
        _selector(args, backbone, device, conditioned_features(args), split="test")


def test_the_test_prompts_score_only_the_four_decodings_when_selecting(monkeypatch):
    selection = ["--rl-steps", "2", "--select-every", "1", "--select-prompts", "4"]
    args = parse_args([*TINY, *selection, "--grid-prompts", "1", "--eval-envs", "4"])
    args.seed = 0
    splits = []
    real = episode_values

    def spy(backbone, engine, env, seed, features=None):
        splits.append(env.task.prompt_split)
        return real(backbone, engine, env, seed, features)

    monkeypatch.setattr("bench.engine_decoding.episode_values", spy)
    rows = run_seed(args, torch.device("cpu"))
    assert splits.count("test") == 4  # (a), (b), (c), (d): once each, after training
    assert splits.count("validation") == 1 + 3  # (b) once, then (d) at steps 0, 1, 2
    assert set(splits) == {"test", "validation"}
    assert splits[-1] == "test" and splits[-2] == "validation"  # (d) is scored on test after its selection
    assert "selected step" in rows["(d) conditioned engine"][0]
    assert rows["(d) conditioned engine"][1]["selected_step"] in (0.0, 1.0, 2.0)


def test_paired_t_is_the_mean_over_its_standard_error():
    mean, t = paired_t(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert mean == 2.5 and t == pytest.approx(2.5 / (torch.tensor([1.0, 2.0, 3.0, 4.0]).std().item() / 2))
    assert paired_t(torch.zeros(3)) == (0.0, 0.0)
    assert paired_t(torch.full((3,), -0.5)) == (-0.5, -math.inf)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--select-every", "-1"], "--select-every -1 must be >= 0"),
        (["--select-every", "5", "--select-prompts", "1"], "--select-prompts 1 must be >= 2"),
    ],
)
def test_bad_selection_flags_are_refused_naming_the_flag(flags, message, capsys):
    with pytest.raises(SystemExit):
        parse_args([*TINY, *flags])
    assert message in capsys.readouterr().err


def test_without_the_flag_nothing_is_selected():
    args = parse_args(TINY)
    assert args.select_every == 0

"""bench.engine_decoding: the conditioned engine (d) is built and trained with the options the bench names
(--feature-offsets, --rl-gamma), at tiny settings on the CPU."""

import pytest
import torch

from bench.engine_decoding import conditioned_features, make_env, parse_args, train_backbone, train_engine

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

"""SB3 recipes: the shipped files load, bad files fail by name, a tiny run trains, writes its curve and
scores fresh episodes that exclude the training pool; the maze extractor reads grid and walls alike."""

import json
from pathlib import Path

import gymnasium as gym
import pytest
import torch
import yaml

import envs  # noqa: F401  (registers the mindgym/ ids)
from agents.ppo_policies import MazeGraphCells
from agents.sb3_eval import evaluate_fresh, maze_key, pool_keys
from agents.sb3_extractors import MazeGraphExtractor, MazePlannerExtractor
from agents.sb3_recipe import load_recipe, main, resolve_class
from envs.maze.vector import MazeVectorEnv
from envs.maze.walls import grid_from_walls

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "sb3"
FIVE = [{"name": "5x5", "height": 5, "width": 5}]


def _tiny(path: Path, recipe: str, **changes) -> Path:
    """A shipped recipe shrunk to a few hundred steps (same keys, smaller numbers)."""
    data = yaml.safe_load((RECIPES / recipe).read_text())
    ((env_id, entry),) = data.items()
    for key, value in changes.items():
        entry[key] = {**entry[key], **value} if isinstance(value, dict) else value
    out = path / recipe
    out.write_text(yaml.safe_dump({env_id: entry}))
    return out


@pytest.mark.parametrize(
    "name", ["maskable_ppo_maze.yml", "maskable_ppo_maze_graph.yml", "recurrent_ppo_copy.yml"]
)
def test_shipped_recipes_load(name):
    recipe = load_recipe(RECIPES / name)
    assert recipe.eval["seed"] != recipe.seed and recipe.n_timesteps > 0
    for key in ("features_extractor_class", "activation_fn"):
        if key in recipe.policy_kwargs:
            assert isinstance(resolve_class(recipe.policy_kwargs[key]), type)


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"algo": "ppo", "policy": "MlpPolicy", "n_envs": 2, "n_timesteps": 10, "lr": 1}, "unknown key"),
        ({"algo": "dqn", "policy": "MlpPolicy", "n_envs": 2, "n_timesteps": 10}, "algo must be one of"),
        ({"algo": "ppo", "policy": "MlpPolicy", "n_envs": 2}, "missing key"),
        (
            {"algo": "ppo", "policy": "M", "n_envs": 2, "n_timesteps": 1, "eval": {"seed": 0}},
            "eval.seed must",
        ),
        (
            {
                "algo": "ppo",
                "policy": "M",
                "n_envs": 2,
                "n_timesteps": 1,
                "hyperparams": {"ent_coef": "cos_1"},
            },
            r"hyperparams\.ent_coef: 'cos_1' is not a number or a schedule",
        ),
    ],
)
def test_bad_recipes_fail_naming_the_problem(tmp_path, entry, message):
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump({"mindgym/Maze-v0": entry}))
    with pytest.raises(ValueError, match=message):
        load_recipe(path)


def test_seed_override_may_not_reuse_the_fresh_evaluation_seed():
    with pytest.raises(ValueError, match=r"eval\.seed"):
        main([str(RECIPES / "maskable_ppo_maze_graph.yml"), "--seed", "1000000", "--device", "cpu"])


def test_classes_outside_the_allowed_packages_are_refused():
    with pytest.raises(ValueError, match="dotted path under"):
        resolve_class("os.system")


@pytest.mark.parametrize(
    "recipe, extractor_kwargs",
    [
        ("maskable_ppo_maze.yml", {"channels": 8, "iterations": 2, "features_dim": 16}),
        ("maskable_ppo_maze_graph.yml", {"channels": 4, "iterations": 3}),
    ],
)
def test_tiny_maze_recipe_trains_and_scores_fresh_mazes(tmp_path, recipe, extractor_kwargs):
    torch.manual_seed(0)
    path = _tiny(
        tmp_path,
        recipe,
        n_envs=8,
        n_timesteps=256,
        env_kwargs={"pool_size": 64},
        policy_kwargs={"features_extractor_kwargs": extractor_kwargs},
        hyperparams={"n_steps": 16, "batch_size": 64, "n_epochs": 1},
        eval={"episodes": 20, "envs": 10, "curve_every": 128, "curve_episodes": 10},
    )
    result = main([str(path), "--out", str(tmp_path / "run"), "--device", "cpu", "--seed", "3"])
    written = json.loads((tmp_path / "run" / "result.json").read_text())
    assert written["fresh"] == result["fresh"] and result["timesteps"] >= 256
    assert written["seed"] == 3  # the --seed override, recorded with the run
    assert result["fresh"]["episodes"] + result["fresh"]["overlap"] == 20
    assert result["pool_size"] <= 64 and result["pool"]["episodes"] == 20
    curve = (tmp_path / "run" / "curve.csv").read_text().splitlines()
    assert curve[0].startswith("timesteps,") and len(curve) >= 3  # a header and rows at 128 and 256 steps
    assert (tmp_path / "run" / "model.zip").is_file()


def test_linear_schedules_decay_to_zero_over_the_run(tmp_path):
    """lin_<value> becomes SB3 schedules (learning rate, clip range) and an entropy coefficient that the
    callback walks down to 0 by the last update (two rollouts of 128 steps: 0.02 -> 0.01 -> 0)."""
    from sb3_contrib import MaskablePPO

    path = _tiny(
        tmp_path,
        "maskable_ppo_maze_graph.yml",
        n_envs=8,
        n_timesteps=256,
        env_kwargs={"pool_size": 64},
        policy_kwargs={"features_extractor_kwargs": {"channels": 4, "iterations": 3}},
        hyperparams={
            "n_steps": 16,
            "batch_size": 64,
            "n_epochs": 1,
            "learning_rate": "lin_1e-3",
            "clip_range": "lin_0.2",
            "ent_coef": "lin_0.02",
        },
        eval={"episodes": 4, "envs": 4, "curve_every": 0},
    )
    main([str(path), "--out", str(tmp_path / "run"), "--device", "cpu"])
    model = MaskablePPO.load(tmp_path / "run" / "model.zip", device="cpu")
    assert model.lr_schedule(1.0) == pytest.approx(1e-3) and model.lr_schedule(0.25) == pytest.approx(2.5e-4)
    assert model.clip_range(0.5) == pytest.approx(0.1)
    assert model.ent_coef == 0.0
    assert model.policy.optimizer.param_groups[0]["lr"] == pytest.approx(0.0)  # the last update's rate


def test_tiny_recurrent_copy_recipe_runs(tmp_path):
    path = _tiny(
        tmp_path,
        "recurrent_ppo_copy.yml",
        n_envs=4,
        n_timesteps=128,
        policy_kwargs={"lstm_hidden_size": 8},
        hyperparams={"n_steps": 32, "batch_size": 64, "n_epochs": 1},
        eval={"episodes": 8, "envs": 4, "curve_every": 0},
    )
    result = main([str(path), "--device", "cpu"])
    assert result["fresh"]["episodes"] == 8 and result["pool_size"] is None
    assert 0.0 <= result["fresh"]["return"] <= 1.0


def test_fresh_evaluation_leaves_out_mazes_of_the_training_pool():
    """Excluding the very mazes the fresh envs will play leaves nothing to score: the check can bite."""
    from sb3_contrib import MaskablePPO

    from envs.common.sb3 import SB3VecEnvAdapter

    kwargs = {"obs_mode": "grid", "levels": FIVE}
    venv = SB3VecEnvAdapter(MazeVectorEnv(4, device="cpu", seed=0, pool_size=8, **kwargs))
    model = MaskablePPO("MlpPolicy", venv, n_steps=8, batch_size=32, seed=0)
    seen = evaluate_fresh(model, "mindgym/Maze-v0", kwargs, 6, 3, 500, exclude=None)
    assert seen["episodes"] == 6 and seen["overlap"] == 0
    played = set()
    for i in range(3):  # the fresh envs' pools: env i is seeded 500 + i and plays its pool in order
        env = gym.make("mindgym/Maze-v0", pool_size=2, **kwargs)
        env.reset(seed=500 + i)
        played.add(maze_key(env.unwrapped.current_maze()))
        env.reset()
        played.add(maze_key(env.unwrapped.current_maze()))
    left = evaluate_fresh(model, "mindgym/Maze-v0", kwargs, 6, 3, 500, exclude=played)
    assert left["overlap"] == 6 and left["episodes"] == 0
    assert len(pool_keys(venv.env)) <= 8


def test_planner_reads_grid_and_walls_observations_alike():
    torch.manual_seed(0)
    env = MazeVectorEnv(4, device="cpu", obs_mode="walls", levels=FIVE, seed=0, pool_size=8)
    obs, _ = env.reset(seed=0)
    walls_net = MazePlannerExtractor(env.single_observation_space, channels=8, iterations=3, features_dim=16)
    grid_space = gym.spaces.Box(0, 255, (3, 11, 11), dtype="uint8")
    grid_net = MazePlannerExtractor(grid_space, channels=8, iterations=3, features_dim=16)
    grid_net.load_state_dict(walls_net.state_dict())
    as_floats = {k: v.float() for k, v in obs.items()}  # as SB3 hands a Dict observation over
    grid = grid_from_walls(obs["walls"], obs["agent"], obs["goal"]).float() / 255  # SB3 scales images
    assert torch.allclose(walls_net(as_floats), grid_net(grid))
    with pytest.raises(ValueError, match="grid_scale"):
        MazePlannerExtractor(gym.spaces.Box(0, 255, (3, 22, 22), dtype="uint8"))


def test_graph_extractor_is_the_ppo_runners_encoder_on_walls_and_grid_observations():
    """The SB3 extractor feeds runners.ppo's MazeGraphCells exactly the image the runner gives it (uint8
    grid), from a walls Dict or an SB3-scaled grid alike, and starts from the runner's seeded weights."""
    env = MazeVectorEnv(4, device="cpu", obs_mode="walls", levels=FIVE, seed=0, pool_size=8)
    obs, _ = env.reset(seed=0)
    torch.manual_seed(0)
    walls_net = MazeGraphExtractor(env.single_observation_space, channels=8, iterations=5)
    torch.manual_seed(0)
    runner_cells = MazeGraphCells(8, 5)
    assert walls_net.features_dim == runner_cells.width == 48
    for name, tensor in runner_cells.state_dict().items():
        assert torch.equal(walls_net.cells.state_dict()[name], tensor), name
    grid = grid_from_walls(obs["walls"], obs["agent"], obs["goal"])  # uint8, as runners.ppo reads it
    expected = runner_cells(grid)
    assert torch.allclose(walls_net({k: v.float() for k, v in obs.items()}), expected, atol=1e-6)
    grid_net = MazeGraphExtractor(
        gym.spaces.Box(0, 255, (3, 11, 11), dtype="uint8"), channels=8, iterations=5
    )
    grid_net.load_state_dict(walls_net.state_dict())
    assert torch.allclose(grid_net(grid.float() / 255), expected, atol=1e-6)
    moved = grid.clone()
    moved[:, 1], moved[:, 2] = grid[:, 2], grid[:, 1]  # agent and goal swapped: other features
    assert not torch.allclose(runner_cells(moved), expected, atol=1e-3)


@pytest.mark.parametrize(
    "space, kwargs, message",
    [
        (gym.spaces.Box(0, 255, (3, 22, 22), dtype="uint8"), {}, "grid_scale"),
        (gym.spaces.Box(0, 1, (7,)), {}, "obs_mode=grid"),
        (gym.spaces.Box(0, 255, (3, 11, 11), dtype="uint8"), {"iterations": 0}, "features_extractor_kwargs"),
    ],
)
def test_graph_extractor_refuses_what_it_cannot_read(space, kwargs, message):
    with pytest.raises(ValueError, match=message):
        MazeGraphExtractor(space, **kwargs)

"""python -m runners.replay: a trained agent's episodes as animations beside the run and in TensorBoard."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from PIL import Image, ImageSequence

from envs.maze import MazeLevel
from envs.maze.render import walked_path
from runners import maze, recall
from runners import replay as replay_module
from runners.app import execute
from runners.replay import HELD_FRAMES, ffmpeg_executable, replay, write_mp4
from tests.runners.helpers import CONF_DIR, compose_config, event_tags


def replay_config(overrides: list[str]):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="replay", overrides=overrides)


def frames(path) -> list[Image.Image]:
    return [frame.convert("RGB") for frame in ImageSequence.Iterator(Image.open(path))]


@pytest.fixture(scope="module")
def maze_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("maze_run")
    execute(compose_config("maze", ["trainer.steps=4"]), "maze", maze.build_experiment, run_dir=folder)
    return folder


def test_maze_replay_draws_every_move_and_logs_to_tensorboard(maze_run):
    written = replay(replay_config([f"checkpoint={maze_run}", "episodes=2", "level=3x3"]))
    assert [p.name for p in written] == ["latest-3x3-episode1.gif", "latest-3x3-episode2.gif"]
    assert all(p.parent == maze_run / "replay" for p in written)
    for path in written:
        shown = frames(path)
        assert len(shown) >= 2 and len({f.size for f in shown}) == 1
        assert len({f.tobytes() for f in shown}) > 1  # the frames change as the agent moves
    assert {"replay/3x3/episode1", "replay/3x3/episode2"} <= set(event_tags(maze_run / "tb")["images"])


def _keep_walked_tokens(monkeypatch) -> dict:
    """Record the final token sequences of the replay's greedy rollouts under ``["tokens"]``."""
    seen = {}
    original = maze.MazeExperiment.greedy_rollouts

    def keep(self, env, level, seed):
        out = original(self, env, level, seed)
        seen["tokens"] = out.final_obs["tokens"].cpu().numpy()
        return out

    monkeypatch.setattr(maze.MazeExperiment, "greedy_rollouts", keep)
    return seen


def test_maze_replay_has_one_frame_per_move_plus_the_start(maze_run, monkeypatch):
    seen = _keep_walked_tokens(monkeypatch)
    written = replay(replay_config([f"checkpoint={maze_run}", "episodes=1", "tensorboard=false"]))
    walk = walked_path(seen["tokens"][0], MazeLevel("3x3", 3, 3))  # the run's level 0 (helpers.TINY)
    assert len(frames(written[0])) == len(walk.moves) + 1


def test_recall_replay_writes_a_frame_per_answer(tmp_path):
    cfg = compose_config("recall", ["trainer.steps=2"])
    execute(cfg, "recall", recall.build_experiment, run_dir=tmp_path)
    written = replay(replay_config([f"checkpoint={tmp_path}", "episodes=1", "level=len2-v4"]))
    assert len(frames(written[0])) == 3  # the sequence before each of the 2 answers, then the end


def test_recall_replay_shows_the_right_answer_beside_each_written_one(tmp_path, monkeypatch):
    cfg = compose_config("recall", ["trainer.steps=2"])
    execute(cfg, "recall", recall.build_experiment, run_dir=tmp_path)
    drawn = []
    keep = lambda title, blocks: drawn.append(blocks) or np.zeros((4, 4, 3), np.uint8)  # noqa: E731
    monkeypatch.setattr(replay_module, "text_frame", keep)
    replay(replay_config([f"checkpoint={tmp_path}", "episodes=1", "level=len4-v8", "tensorboard=false"]))
    assert len(drawn) == 5  # before each of the 4 answers, then the end
    for blocks in drawn[:-1]:
        labels = [label for label, _, _ in blocks]
        assert labels[1:3] == ["writes next:", "the right answer:"]
    label, marks, _ = drawn[-1][-1]
    right = int(label.split()[3])  # "answers so far: <k> right of 4"
    assert label.endswith("of 4") and len(marks.split(";")) == 4
    assert sum(m.strip() == "right" for m in marks.split(";")) == right  # the oracle agrees with the reward


@pytest.mark.parametrize(
    "overrides, names",
    [
        (["format=avi"], "format=gif"),
        (["episodes=0"], "episodes=4"),
        (["level=9x9"], "level=3x3"),
        (["checkpoint=/no/such/run"], "checkpoint=outputs/<date>/<time>"),
    ],
)
def test_bad_options_name_the_override_that_fixes_them(maze_run, overrides, names):
    cfg = replay_config([f"checkpoint={maze_run}", *overrides])
    with pytest.raises(ValueError, match=names.replace("<", ".").replace(">", ".")):
        replay(cfg)


def decoded_frames(path) -> list[np.ndarray]:
    """Every frame of a video file, decoded back through imageio-ffmpeg (the video extra)."""
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    return [np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader]


def test_mp4_holds_every_frame_in_order_at_even_size(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    shades = [0, 120, 250]  # three flat frames, 41 x 31 pixels: ffmpeg's yuv420p needs even sides
    frames = [np.full((31, 41, 3), shade, np.uint8) for shade in shades]
    path = tmp_path / "clip.mp4"
    write_mp4(frames, path, fps=3)
    decoded = decoded_frames(path)
    assert len(decoded) == len(frames) + HELD_FRAMES
    assert all(f.shape == (32, 42, 3) for f in decoded)
    means = [float(f[:31, :41].mean()) for f in decoded]
    assert means == pytest.approx([*shades, shades[-1], shades[-1]], abs=6)
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_maze_replay_as_mp4_has_a_frame_per_move_and_still_logs_to_tensorboard(maze_run, monkeypatch):
    pytest.importorskip("imageio_ffmpeg")
    seen = _keep_walked_tokens(monkeypatch)
    out = maze_run / "mp4"
    written = replay(replay_config([f"checkpoint={maze_run}", "episodes=1", "format=mp4", f"out={out}"]))
    assert [p.name for p in written] == ["latest-3x3-episode1.mp4"]
    walk = walked_path(seen["tokens"][0], MazeLevel("3x3", 3, 3))
    assert len(decoded_frames(written[0])) == len(walk.moves) + 1 + HELD_FRAMES
    assert "replay/3x3/episode1" in event_tags(maze_run / "tb")["images"]


def test_mp4_without_ffmpeg_names_the_install_command(maze_run, monkeypatch):
    monkeypatch.setattr(replay_module, "ffmpeg_executable", lambda: None)
    with pytest.raises(ValueError, match=r"pip install 'mindgym\[video\]'.*format=gif"):
        replay(replay_config([f"checkpoint={maze_run}", "format=mp4"]))


@pytest.mark.skipif(ffmpeg_executable() is not None, reason="this machine has an ffmpeg")
def test_mp4_without_ffmpeg_says_so_on_the_command_line(maze_run):
    command = [sys.executable, "-m", "runners.replay", f"checkpoint={maze_run}", "format=mp4"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "mindgym[video]" in done.stderr and "format=gif" in done.stderr and "Traceback" not in done.stderr

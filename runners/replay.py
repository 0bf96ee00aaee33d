"""Watch a trained agent: ``python -m runners.replay checkpoint=<run folder or .pt> episodes=4 format=gif``.

Rebuilds the run a checkpoint came from (as ``runners.evaluate`` does), plays ``episodes`` fresh episodes
at one curriculum level (``level=``: a name or index; default the level the run had reached) and writes
one animation per episode into the run's ``replay/`` folder (``out=`` elsewhere):

- maze: the greedy walk drawn move by move (start, goal, the path coloured from first to last move, revisited
  cells ringed, wall bumps crossed, the agent's cell in red), the verdict on the last frame;
- recall: the sequence as the agent sees it after each answer it writes, the next answer beside the right
  one, each answer so far marked right or wrong;
- generation: the prompt and the engine-decoded continuation growing byte by byte, with the reward at the end.

The animations go to TensorBoard too (``tensorboard=true``): the run's ``tb/`` gets each GIF under
``replay/<level>/episode<i>`` at the checkpoint's step, whichever the file format. ``format=mp4`` needs an
ffmpeg: the one the ``video`` extra installs (``pip install 'mindgym[video]'``, i.e. imageio-ffmpeg, which
ships a static binary in its wheel), else one on the PATH.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig

from foundation import make_generator, seed_everything
from runners.evaluate import checkpoint_file, load_experiment
from runners.experiment import AgentExperiment

FORMATS = ("gif", "mp4")
TEXT_WIDTH = 78  # characters per line of a text frame


@dataclass
class Episode:
    """One replayed episode: its frames (H, W, 3) uint8 and what happened, for the console table."""

    frames: list[np.ndarray]
    steps: int
    outcome: str


def run_folder(checkpoint: Path) -> Path:
    """The run folder a checkpoint file belongs to (``<run>/checkpoints/x.pt`` -> ``<run>``)."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


def pick_level(experiment: AgentExperiment, state: dict[str, Any], level: Any) -> int:
    """The ladder index to replay: ``level`` by name or index, else the level the run had reached."""
    ladder = experiment.task.ladder
    names = list(ladder.names)
    if level is None:
        saved = (state.get("experiment") or {}).get("curriculum")
        if saved is not None:
            experiment.curriculum.load_state_dict(saved)
            return int(experiment.level)
        return 0
    if isinstance(level, int) and not isinstance(level, bool) and 0 <= level < len(names):
        return level
    if str(level) in names:
        return names.index(str(level))
    choices = ", ".join(f"level={name}" for name in names)
    raise ValueError(f"level={level!r} is not a level of this run; use one of {choices} (or an index).")


def figure_array(figure: Any) -> np.ndarray:
    """A matplotlib Figure drawn into an (H, W, 3) uint8 array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


# ------------------------------------------------------------------------------------------ maze
MOVE_NAMES = ("up", "right", "down", "left")


def maze_episodes(experiment: AgentExperiment, index: int, episodes: int, seed: int) -> list[Episode]:
    """Greedy walks on ``episodes`` fresh mazes at ladder ``index``, each drawn after every move."""
    from envs.maze import tokens as tok
    from envs.maze.render import cell_pixel, rollout_figure, walked_path

    level = experiment.task.ladder[index]
    env = experiment.make_vector_env(episodes, seed)
    out = experiment.greedy_rollouts(env, index, seed)
    tokens = out.final_obs["tokens"].cpu().numpy()
    success, optimal = out.final["success"].cpu(), out.final["solved_optimally"].cpu()
    prefix = tok.prefix_length(level)
    result = []
    for i in range(episodes):
        walk = walked_path(tokens[i], level)
        verdict = "optimal path" if optimal[i] else ("reached the goal" if success[i] else "failed")
        frames = []
        for k in range(len(walk.moves) + 1):
            figure = rollout_figure(tokens[i][: prefix + k], level, bool(success[i]), bool(optimal[i]))
            ax = figure.axes[0]
            ax.scatter(*cell_pixel(walk.cells[k], level.width)[::-1], s=60, color="red", zorder=7)
            _add_agent_to_legend(ax)
            moved = f", {MOVE_NAMES[walk.moves[k - 1]]}" if k else ""
            status = f" - {verdict}" if k == len(walk.moves) else ""
            ax.set_title(
                f"{level.name} maze, episode {i + 1}/{episodes}\nmove {k}/{len(walk.moves)}{moved}{status}",
                fontsize=8,
            )
            figure.tight_layout()
            frames.append(figure_array(figure))
        result.append(Episode(frames, len(walk.moves), f"{verdict}, {len(walk.revisited)} cells revisited"))
    return result


def _add_agent_to_legend(ax: Any) -> None:
    """Redraw the rollout figure's legend with the agent's current cell (the red dot) added."""
    from matplotlib.lines import Line2D

    legend = ax.get_legend()
    agent = Line2D([], [], marker="o", color="red", linestyle="", label="agent now")
    labels = [*(t.get_text() for t in legend.get_texts()), "agent now"]
    place = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.01), "ncol": 2, "fontsize": 6}
    ax.legend([*legend.legend_handles, agent], labels, frameon=False, **place)


# ------------------------------------------------------------------------------------------ text
def printable(text: str) -> str:
    """``text`` with control and other unprintable characters written as escapes (``\\n``, ``\\x1b``)."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def text_frame(title: str, blocks: list[tuple[str, str, str]]) -> np.ndarray:
    """A fixed-size frame of monospaced text: a title, then (label, text, colour) blocks, wrapped."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.2, 4.2), dpi=100)
    figure.text(0.02, 0.96, title, fontsize=10, weight="bold", va="top", family="monospace")
    y = 0.88
    for label, text, colour in blocks:
        figure.text(0.02, y, label, fontsize=8, va="top", color="dimgray")
        wrap = {"replace_whitespace": False, "drop_whitespace": False}
        lines = textwrap.wrap(printable(text), TEXT_WIDTH, **wrap) or [""]
        body = "\n".join(lines[-12:])  # long texts keep their most recent lines
        figure.text(0.04, y - 0.05, body, fontsize=8, va="top", family="monospace", color=colour)
        y -= 0.09 + 0.034 * min(len(lines), 12)
    return figure_array(figure)


def text_episodes(
    experiment: AgentExperiment,
    index: int,
    episodes: int,
    seed: int,
    frame: Callable[[int, int, dict[str, Any]], np.ndarray],
) -> list[Episode]:
    """Play ``episodes`` recall or generation episodes at ladder ``index`` and draw one frame per step
    (``frame(episode, step, view)``; ``view`` holds the sequence before the step, the action's token, its
    reward and the episode's final info)."""
    if experiment.runner == "generation":
        env = experiment.make_vector_env(episodes, seed, experiment.eval_task)
        policy = experiment.agent.policy(generator=make_generator(seed, "replay/generate", experiment.device))
    else:
        env = experiment.make_vector_env(episodes, seed)
        policy = experiment.agent.backbone_policy()
    out = experiment.play(env, index, policy, seed, keep_transitions=True)
    moves = out.transitions
    action_tokens = experiment.task.action_token_ids
    result = []
    for i in range(episodes):
        done = moves.done[:, i].nonzero()
        last = int(done[0]) if len(done) else moves.done.shape[0] - 1
        final = {k: v[i].item() for k, v in out.final.items() if v.ndim == 1}
        frames, rewards = [], []
        for s in range(last + 1):
            tokens = moves.tokens[s, i, : int(moves.length[s, i])].tolist()
            rewards.append(float(moves.rewards[s, i]))
            view = {"tokens": tokens, "token": action_tokens[int(moves.actions[s, i])], "rewards": rewards}
            frames.append(frame(i, s, view))
        end = out.final_obs["tokens"][i, : int(out.final_obs["length"][i])].tolist()
        frames.append(frame(i, last + 1, {"tokens": end, "token": None, "rewards": rewards, "final": final}))
        outcome = "success" if final.get("success") else "no success"
        if final.get("score") is not None:
            outcome += f", score {final['score']:.3f}"
        result.append(Episode(frames, last + 1, outcome))
    return result


def recall_episodes(experiment: AgentExperiment, index: int, episodes: int, seed: int) -> list[Episode]:
    """Greedy answers to ``episodes`` fresh recall sequences, one frame per answer written, each beside the
    right answer (the task's oracle on the same prefix, which is what the reward scores)."""
    from envs.recall.tokens import describe_tokens

    task = experiment.task
    family = task.family.name
    as_bytes = family == "needle"
    level = task.ladder[index].name
    answers: dict[int, list[str]] = {}  # episode -> "right" / "wrote x, not y" for each answer so far

    def frame(i: int, step: int, view: dict[str, Any]) -> np.ndarray:
        done = answers.setdefault(i, [])
        right = sum(r > 0 for r in view["rewards"][:step])
        seen = describe_tokens(view["tokens"], as_bytes)
        blocks = [("sequence the agent reads (answers written in):", seen, "k")]
        if view["token"] is not None:
            wrote = describe_tokens([view["token"]], as_bytes)
            correct = describe_tokens([task.oracle_next_token(view["tokens"])], as_bytes)
            blocks.append(("writes next:", wrote, "tab:blue"))
            blocks.append(("the right answer:", correct, "tab:green" if wrote == correct else "tab:red"))
            done.append("right" if wrote == correct else f"wrote {wrote!r}, not {correct!r}")
        colour = "tab:green" if right == step else "tab:red"
        blocks.append((f"answers so far: {right} right of {step}", ";  ".join(done[:step]), colour))
        head = f"{family} {level}, episode {i + 1}, step {step}"
        if "final" in view:
            head += " - success" if view["final"].get("success") else " - not all answers right"
        return text_frame(head, blocks)

    return text_episodes(experiment, index, episodes, seed, frame)


def generation_episodes(experiment: AgentExperiment, index: int, episodes: int, seed: int) -> list[Episode]:
    """Engine-decoded continuations of ``episodes`` validation prompts, one frame per byte written."""
    from envs.generation import decode

    level = experiment.task.ladder[index].name
    starts: dict[int, int] = {}

    def frame(i: int, step: int, view: dict[str, Any]) -> np.ndarray:
        start = starts.setdefault(i, len(view["tokens"]))
        prompt, written = decode(view["tokens"][:start]), decode(view["tokens"][start:])
        head = f"generation {level}, episode {i + 1}, byte {step}"
        if "final" in view:
            final = view["final"]
            head += f" - reward {final.get('score', float('nan')):.3f}"
        return text_frame(head, [("prompt:", prompt, "k"), ("continuation:", written, "tab:blue")])

    return text_episodes(experiment, index, episodes, seed, frame)


PLAYERS = {"maze": maze_episodes, "recall": recall_episodes, "generation": generation_episodes}


# ------------------------------------------------------------------------------------------ files
def gif_bytes(frames: list[np.ndarray], fps: float) -> bytes:
    """``frames`` encoded as a looping GIF (the last frame held three times as long)."""
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    duration = [int(1000 / fps)] * (len(images) - 1) + [int(3000 / fps)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)
    return buffer.getvalue()


def write_gif(frames: list[np.ndarray], path: Path, fps: float) -> bytes:
    """Write ``frames`` as a looping GIF, atomically; returns its bytes."""
    data = gif_bytes(frames, fps)
    _atomic_bytes(path, data)
    return data


MP4_HELP = (
    "format=mp4 needs ffmpeg: install the one the video extra ships with pip install 'mindgym[video]' "
    "(or pip install imageio-ffmpeg), or put ffmpeg on the PATH; format=gif needs neither."
)
HELD_FRAMES = 2  # extra copies of the last frame in an MP4, so the verdict stays on screen


def ffmpeg_executable() -> str | None:
    """The ffmpeg to encode MP4s with: imageio-ffmpeg's bundled binary (the ``video`` extra) when that
    package is installed, else ``ffmpeg`` on the PATH; None when there is neither."""
    try:
        import imageio_ffmpeg
    except ImportError:
        return shutil.which("ffmpeg")
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:  # the package is there but its binary is not (a source install): try the PATH
        return shutil.which("ffmpeg")


def write_mp4(frames: list[np.ndarray], path: Path, fps: float) -> None:
    """Write ``frames`` as an MP4 through ffmpeg (its default MP4 codec, H.264 where it has it, in yuv420p,
    which every player reads), atomically; the last frame is repeated ``HELD_FRAMES`` times."""
    ffmpeg = ffmpeg_executable()
    if ffmpeg is None:
        raise ValueError(MP4_HELP)
    frames = frames + [frames[-1]] * HELD_FRAMES
    h, w = frames[0].shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    command = [ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}"]
    command += ["-r", str(fps), "-i", "-", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-pix_fmt", "yuv420p"]
    command += ["-movflags", "+faststart", str(tmp)]
    done = subprocess.run(command, input=b"".join(f.tobytes() for f in frames), capture_output=True)
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        message = done.stderr.decode(errors="replace").strip()[-400:]
        raise RuntimeError(f"{ffmpeg} could not write {path}: {message}")
    tmp.replace(path)


def _atomic_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def log_gif(tb_dir: Path, tag: str, gif: bytes, frame: np.ndarray, step: int) -> None:
    """Add a GIF to TensorBoard's image dashboard, which plays it: what SummaryWriter.add_video does, without
    add_video's moviepy dependency."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from torch.utils.tensorboard import SummaryWriter

    image = Summary.Image(height=frame.shape[0], width=frame.shape[1], colorspace=3, encoded_image_string=gif)
    with SummaryWriter(str(tb_dir)) as writer:
        writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)


# ------------------------------------------------------------------------------------------ command
def check_options(cfg: DictConfig) -> None:
    """Refuse bad options with the override that fixes them."""
    if cfg.format not in FORMATS:
        raise ValueError(f"format={cfg.format!r} is unknown; use format=gif or format=mp4 (needs ffmpeg).")
    if isinstance(cfg.episodes, bool) or not isinstance(cfg.episodes, int) or not 1 <= cfg.episodes <= 64:
        raise ValueError(f"episodes={cfg.episodes!r}: replay 1 to 64 episodes, e.g. episodes=4.")
    if isinstance(cfg.fps, bool) or not isinstance(cfg.fps, int | float) or not 0 < cfg.fps <= 60:
        raise ValueError(f"fps={cfg.fps!r}: frames per second between 0 and 60, e.g. fps=3.")
    if cfg.format == "mp4" and ffmpeg_executable() is None:
        raise ValueError(MP4_HELP)


def replay(cfg: DictConfig) -> list[Path]:
    """Play and write the episodes ``cfg`` asks for; returns the files written."""
    check_options(cfg)
    seed_everything(int(cfg.seed))
    checkpoint = checkpoint_file(cfg.checkpoint)
    experiment, state = load_experiment(checkpoint, str(cfg.device))
    index = pick_level(experiment, state, cfg.level)
    level = experiment.task.ladder[index].name
    episodes = PLAYERS[experiment.runner](experiment, index, int(cfg.episodes), int(cfg.seed))
    run = run_folder(checkpoint)
    out_dir = Path(cfg.out) if cfg.out else run / "replay"
    step = int(state.get("step", 0))
    written = []
    print(f"{experiment.runner} checkpoint {checkpoint} (step {step}), level {level}:")
    for i, episode in enumerate(episodes):
        path = out_dir / f"{checkpoint.stem}-{level}-episode{i + 1}.{cfg.format}"
        if cfg.format == "gif":
            gif = write_gif(episode.frames, path, float(cfg.fps))
        else:
            write_mp4(episode.frames, path, float(cfg.fps))
            gif = gif_bytes(episode.frames, float(cfg.fps)) if cfg.tensorboard else b""
        if cfg.tensorboard:  # TensorBoard plays GIFs (its video format), whichever file was written
            log_gif(run / "tb", f"replay/{level}/episode{i + 1}", gif, episode.frames[0], step)
        written.append(path)
        print(f"  episode {i + 1}: {episode.steps} steps, {episode.outcome} -> {path}")
    if cfg.tensorboard:
        print(f"TensorBoard: tensorboard --logdir {run / 'tb'} (Images tab, replay/{level}/...).")
    return written


@hydra.main(version_base="1.3", config_path="conf", config_name="replay")
def main(cfg: DictConfig) -> None:
    try:
        replay(cfg)
    except ValueError as err:  # CheckpointError is one: a message for the command line, no traceback
        raise SystemExit(f"Error in the command line of runners.replay: {err}") from None


if __name__ == "__main__":
    main()

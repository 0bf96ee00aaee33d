"""DDP with two CPU processes on gloo: identical models on every rank, only rank 0 writes the run's record,
evaluation split over the ranks, one curriculum for the run, and an exact resume."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.multiprocessing as mp

from agents.engine import inverse_softplus
from curricula import AdaptiveSchedule, Curriculum
from foundation.checkpoint import load_checkpoint
from runners import recall
from runners.app import rank_seed
from runners.ddp import DistInfo, pooled_means, setup_distributed, share_of
from tests.runners.ddp_worker import RL, curriculum_worker, runner_worker
from tests.runners.helpers import compose_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(tmp_path, runner: str, overrides: list[str], run: str = "run", interrupt_at: int | None = None):
    """Two gloo processes train ``runner`` into ``tmp_path/run``; returns each rank's saved models."""
    out = tmp_path / f"{run}-ranks"
    out.mkdir(exist_ok=True)  # a resume launches into the same run again
    args = (2, free_port(), runner, overrides, str(tmp_path / run), str(out), interrupt_at)
    mp.spawn(runner_worker, args=args, nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]


def assert_same_models(ranks: list[dict], parts=("backbone", "engine")) -> None:
    for part in parts:
        for name, tensor in ranks[0][part].items():
            torch.testing.assert_close(ranks[1][part][name], tensor, msg=f"{part}.{name} differs")


def test_two_gloo_processes_train_one_agent_and_only_rank0_writes(tmp_path):
    ranks = launch(tmp_path, "maze", RL)
    run_dir = tmp_path / "run"

    assert [r["rank"] for r in ranks] == [0, 1]
    assert_same_models(ranks)  # the backbone (DDP) and the engine (averaged gradients) alike
    initial = torch.tensor(inverse_softplus(1.0 - 0.05))  # engine.temperature 1, min_temperature 0.05
    assert not torch.allclose(ranks[0]["engine"]["raw_temperature"], initial)  # RL steps moved the engine
    # one curriculum for the run: the same statistics (every rank's episodes) and clock on both ranks
    assert ranks[0]["curriculum_steps"] == ranks[1]["curriculum_steps"] == 4
    stats = [r["curriculum"]["stats"] for r in ranks]
    assert stats[0]["episodes"].sum() > 0
    for name, tensor in stats[0].items():
        torch.testing.assert_close(stats[1][name], tensor, msg=f"curriculum stats.{name} differ")
    assert ranks[0]["curriculum"]["schedule"] == ranks[1]["curriculum"]["schedule"]
    assert (run_dir / "checkpoints" / "latest.pt").is_file()
    assert (run_dir / "report.json").is_file()
    assert len(list((run_dir / "tb").iterdir())) == 1  # one events file: rank 1 logged nothing


def test_the_shared_curriculum_advances_on_every_ranks_outcomes(tmp_path):
    """Rank 0 alone (8 of 8 solved) would move up; with rank 1's 8 failures the run's rate is 50%, and
    both ranks hold exactly the statistics of one curriculum that saw all 16 episodes."""
    reference = Curriculum(AdaptiveSchedule(3, threshold=0.8, min_episodes=8))
    reference.record(torch.zeros(16, dtype=torch.long), torch.arange(16) < 8)
    for successes, level in (([True, False], 0), ([True, True], 1)):
        out = tmp_path / str(level)
        out.mkdir()
        mp.spawn(curriculum_worker, args=(2, free_port(), successes, str(out)), nprocs=2, join=True)
        saved = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]
        assert saved[0]["level"] == saved[1]["level"] == level  # both moved, or neither
        for name, tensor in saved[0]["state"]["stats"].items():
            torch.testing.assert_close(saved[1]["state"]["stats"][name], tensor, msg=name)
        assert int(saved[0]["state"]["stats"]["episodes"][0]) == 16  # both ranks' episodes
        if level == 0:
            for name, tensor in reference.stats.state_dict().items():
                torch.testing.assert_close(saved[0]["state"]["stats"][name], tensor, msg=name)


def test_shares_split_the_episodes_and_pool_by_count():
    shares = [share_of(5, DistInfo(rank=r, world_size=2)) for r in range(2)]
    assert shares == [3, 2]
    assert [share_of(8, DistInfo(rank=r, world_size=4)) for r in range(4)] == [2, 2, 2, 2]
    means, count = pooled_means({"exact": torch.tensor(0.5)}, 4, DistInfo())
    assert (means, count) == ({"exact": 0.5}, 4)


@pytest.mark.slow
def test_evaluation_is_split_over_ranks_and_equals_one_process_on_the_same_episodes(tmp_path):
    """Five sequences per level: rank 0 plays 3 from its seed, rank 1 plays 2 from its own; the reported
    numbers are those of one process scoring exactly those 5 sequences with the trained weights."""
    launch(tmp_path, "recall", ["task.eval_batch=5"])
    latest = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    final = latest["history"][-1]
    cfg = compose_config("recall", ["task.eval_batch=5"])
    single = recall.build_experiment(cfg, DistInfo())
    single.load_weights(latest["experiment"])
    step, checked = latest["step"], 0
    for index, name in enumerate(single.task.ladder.names):
        if f"accuracy/{name}" not in final:
            continue
        right = exact = 0.0
        for rank, share in enumerate([3, 2]):
            seed = rank_seed(cfg, DistInfo(rank=rank, world_size=2)) + 7 + step + index
            scored = single.score_level(index, seed, batch_size=share)
            right += float(scored.means["accuracy"]) * share
            exact += float(scored.means["exact_match"]) * share
        assert final[f"accuracy/{name}"] == pytest.approx(right / 5, abs=1e-5)
        assert final[f"exact_match/{name}"] == pytest.approx(exact / 5, abs=1e-5)
        checked += 1
    assert checked >= 1


@pytest.mark.slow
def test_a_stopped_and_resumed_ddp_run_matches_an_uninterrupted_one(tmp_path):
    overrides = ["trainer.steps=6"]  # supervised: the backbone is the DDP module
    whole = launch(tmp_path, "maze", overrides, run="whole")
    assert_same_models(whole)

    launch(tmp_path, "maze", overrides, run="split", interrupt_at=3)  # Ctrl-C on rank 0 only
    stopped = load_checkpoint(tmp_path / "split" / "checkpoints" / "latest.pt")
    assert stopped["step"] == 4 and len(stopped["ranks"]) == 2
    samplers = [part["experiment"]["sampler"]["generator"] for part in stopped["ranks"]]
    assert not torch.equal(*samplers)  # each rank's own data stream is kept, not rank 0's for both

    resumed = launch(tmp_path, "maze", [*overrides, "resume=true"], run="split")
    assert_same_models(resumed)
    assert_same_models([whole[0], resumed[0]])  # the resumed run reached the uninterrupted run's models
    ended = [load_checkpoint(tmp_path / run / "checkpoints" / "latest.pt") for run in ("whole", "split")]
    assert ended[1]["step"] == 6
    scores = [[h["score"] for h in e["history"]] for e in ended]
    assert scores[0] == scores[1]


@pytest.mark.slow
def test_the_compiled_step_a_gpu_runs_keeps_the_ranks_identical(tmp_path):
    """compile=auto compiles forward + loss on CUDA, around the DDP module: gradients still reach every
    rank's optimiser averaged (about a minute on the CPU, most of it compiling)."""
    ranks = launch(tmp_path, "maze", ["trainer.supervised.compile=loss"])
    assert_same_models(ranks)


def test_ddp_outside_torchrun_says_how_to_launch(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(ValueError, match="torchrun --nproc_per_node"):
        setup_distributed(True, "cpu")


def test_single_process_needs_no_process_group():
    info = setup_distributed(False, "cpu")
    assert info == DistInfo(device=torch.device("cpu")) and info.is_main and not info.distributed

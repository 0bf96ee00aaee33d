"""bench.seed_fidelity: parts measured in separate calls combine into one table, seed by seed; every part
runs end to end on the CPU at tiny settings and gives its seed its rows."""

import json

import pytest
import torch

from agents.dual import InterleaveSchedule
from bench import seed_fidelity_parts
from bench.seed_fidelity import main, parse_args, part_command
from bench.seed_fidelity_parts import PART_NAMES, POH_SEED, part_overrides
from bench.seed_fidelity_record import SEEDS, PartRecord, combine, load_parts, save_part
from tests.runners.helpers import compose_config

ACT_TINY = [
    "--act-train-steps",
    "2",
    "--act-seq-len",
    "16",
    "--act-batch",
    "2",
    "--act-d-model",
    "40",
    "--act-n-layers",
    "2",
    "--act-n-heads",
    "2",
    "--act-repeats",
    "1",
]

# Each training part shrunk through --overrides: a few steps of a tiny model, small evaluations.
TRAIN_TINY = {
    "bwr_dnc": ["trainer.steps=3", "trainer.eval_every=3", "backbone.d_model=16", "backbone.n_layers=1"],
    "poh_hrm": [
        "task.train_mazes=4",
        "task.test_mazes=2",
        "trainer.epochs=1",
        "backbone.d_model=20",
        "backbone.n_layers=1",
        "trainer.eval_every=1",
    ],
    "poh_baseline": [
        "task.train_mazes=4",
        "task.test_mazes=2",
        "trainer.epochs=1",
        "backbone.d_model=12",
        "backbone.n_heads=2",
        "backbone.n_layers=1",
        "trainer.eval_every=1",
    ],
    "agiformer": [
        "trainer.steps=8",
        "trainer.eval_every=8",
        "backbone.d_model=16",
        "backbone.n_layers=1",
        "backbone.n_heads=2",
        "task.eval_bytes=256",
        "task.eval_envs=2",
        "engine.rl_envs=2",
    ],
    "echo": [
        "trainer.steps=6",
        "trainer.eval_every=6",
        "backbone.d_model=16",
        "backbone.n_layers=1",
        "backbone.n_heads=2",
        "task.eval_bytes=256",
        "task.eval_envs=2",
        "engine.rl_envs=2",
        "engine.interleave.warmup_supervised=2",
        "engine.interleave.supervised_steps=1",
    ],
}


def record(part: str, seed: str, value: float) -> PartRecord:
    row = {"seed": seed, "measure": f"{part} measure", "seed_reported": 0.5, "mindgym": value, "step": 3}
    return PartRecord(
        part=part, rows=[row], device="cpu", date="2026-12-03", minutes=0.1, command=f"cmd {part}"
    )


def test_parts_saved_by_separate_calls_combine_in_seed_order_and_name_what_is_missing(tmp_path):
    save_part(tmp_path, record("poh_hrm", "poh_hrm", 0.9))
    save_part(tmp_path, record("bwr_dnc", "bwr_dnc", 0.1))
    save_part(tmp_path, record("bwr_dnc", "bwr_dnc", 0.99))  # a re-run replaces the part's rows
    combined = combine(load_parts(tmp_path), PART_NAMES)
    assert [(r["seed"], r["mindgym"]) for r in combined.rows] == [("bwr_dnc", 0.99), ("poh_hrm", 0.9)]
    assert combined.missing_seeds == ["agiformer", "cognate", "echo"]
    assert combined.missing_parts == [p for p in PART_NAMES if p not in ("bwr_dnc", "poh_hrm")]


def test_combine_call_writes_one_table_of_every_saved_part_with_commands_for_the_rest(tmp_path, capsys):
    for part, seed in (("act_sweep", "cognate"), ("echo", "echo"), ("agiformer", "agiformer")):
        save_part(tmp_path, record(part, seed, 0.25))
    main(["--out", str(tmp_path), "--combine"])
    table = (tmp_path / "seed_fidelity.md").read_text()
    lines = [
        line for line in table.splitlines() if line.endswith(("| act_sweep |", "| echo |", "| agiformer |"))
    ]
    assert [line.split(" | ")[0] for line in lines] == ["| agiformer", "| cognate", "| echo"]
    assert "step 3" in lines[0]  # a row's other values are its details
    assert "--parts poh_hrm" in table and "Seeds without a row yet: bwr_dnc, poh_hrm." in table
    saved = json.loads((tmp_path / "seed_fidelity.json").read_text())
    assert saved["missing_seeds"] == ["bwr_dnc", "poh_hrm"] and len(saved["rows"]) == 3
    assert "| echo | echo measure | 0.5 | 0.25 | step 3 | echo |" in capsys.readouterr().out


def test_a_broken_part_file_is_named_with_the_command_that_remeasures_it(tmp_path):
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "echo.json").write_text('{"part": "echo"}')
    with pytest.raises(ValueError, match=r"echo\.json.*--parts echo"):
        load_parts(tmp_path)


def test_rows_must_name_a_known_seed_and_the_table_columns():
    with pytest.raises(ValueError, match="unknown seed 'dnc'"):
        record("bwr_dnc", "dnc", 0.1)
    with pytest.raises(ValueError, match="without \\['mindgym'\\]"):
        PartRecord("x", [{"seed": "echo", "measure": "m", "seed_reported": 1}], "cpu", "d", 0.0, "c")


def test_overrides_reach_their_part_only_and_a_wrong_part_is_refused(tmp_path):
    args = parse_args(
        [
            "--out",
            str(tmp_path),
            "--parts",
            "all",
            "--overrides",
            "trainer.steps=5",
            "echo:backbone.d_model=16",
            "task.corpus=hf:wikitext",
        ]
    )
    assert args.parts == list(PART_NAMES)
    assert part_overrides(args, "echo") == [
        "trainer.steps=5",
        "backbone.d_model=16",
        "task.corpus=hf:wikitext",
    ]
    assert part_overrides(args, "bwr_dnc") == ["trainer.steps=5", "task.corpus=hf:wikitext"]
    assert "--overrides" not in part_command(args, "act_sweep")  # it trains no runner
    assert "echo:backbone.d_model=16" in part_command(args, "echo")
    args.overrides = ["ehco:trainer.steps=5"]
    with pytest.raises(ValueError, match="no part 'ehco'"):
        part_overrides(args, "echo")
    with pytest.raises(SystemExit):  # refused before any part runs
        parse_args(["--out", str(tmp_path), "--parts", "act_sweep", "--overrides", "ehco:trainer.steps=5"])
    with pytest.raises(SystemExit):
        parse_args(["--out", str(tmp_path), "--parts", "cognate"])
    with pytest.raises(SystemExit):
        parse_args(["--out", str(tmp_path)])  # nothing to do


def test_act_parts_run_on_cpu_and_give_cognate_its_rows(tmp_path):
    main(["--device", "cpu", "--out", str(tmp_path), "--parts", "act_sweep", "act_variants", *ACT_TINY])
    rows = json.loads((tmp_path / "seed_fidelity.json").read_text())["rows"]
    assert {r["seed"] for r in rows} == {"cognate"}
    sweep = [r for r in rows if r["part"] == "act_sweep"]
    assert len(sweep) == 6 and all(r["mindgym"] > 0 and r["act_skip_off_ms"] > 0 for r in sweep)
    assert [r["steps_mean"] for r in sweep[:3]] == pytest.approx([1.0, 2.0, 3.0])
    measures = {r["measure"]: r for r in rows if r["part"] == "act_variants"}
    assert {f"cognate_{v}: ACT mean steps after 2 steps" for v in ("reasoning", "memory", "speed")} <= set(
        measures
    )
    ratio = measures["forward time, speed variant / reasoning variant (median of per-round ratios)"]
    assert ratio["mindgym"] > 0 and ratio["speed_faster_rounds"].endswith("of 1") and ratio["threads"] >= 1
    variants = {v: measures[f"cognate_{v}: ACT mean steps after 2 steps"] for v in ("reasoning", "speed")}
    # The speed preset halts after 2 of 3 steps, the reasoning preset after 3: it computes 2/3 of the rows.
    assert variants["speed"]["mindgym"] < variants["reasoning"]["mindgym"]
    assert variants["speed"]["rows_share"] < variants["reasoning"]["rows_share"]


def test_poh_rows_set_the_seeds_optimal_beside_near_optimal_and_keep_exact_path_a_row_of_its_own(
    tmp_path, monkeypatch
):
    """The seed's "optimal" is a solved walk within 1.05x of the shortest path: its row reads the test set's
    near_optimal rate, not the exact-path rate (the training is replaced by a finished run's numbers)."""
    table = {
        "success": {"12x12": 0.9},
        "near_optimal": {"12x12": 0.6},
        "exact_path": {"12x12": 0.3},
        "test_mazes": {"12x12": 80},
    }

    class Finished:
        n_params = 7_030_100

        def full_evaluation(self):
            return table

    monkeypatch.setattr(seed_fidelity_parts, "train", lambda *_: {"steps_done": 375, "steps": 375})
    monkeypatch.setattr(seed_fidelity_parts, "trained", lambda *_: (Finished(), {}))
    args = parse_args(["--out", str(tmp_path), "--parts", "poh_hrm"])
    measured = seed_fidelity_parts.BY_NAME["poh_hrm"].measure(args, torch.device("cpu"))
    rows = {r["measure"]: r for r in measured}
    optimal = rows["poh_hrm: 12x12 optimal (solved within 1.05x of the shortest path)"]
    assert optimal["seed_reported"] == POH_SEED["poh_hrm"]["optimal"] and optimal["mindgym"] == 0.6
    exact = rows["poh_hrm: 12x12 exact shortest path (not reported by the seed)"]
    assert exact["seed_reported"] is None and exact["mindgym"] == 0.3
    assert rows["poh_hrm: 12x12 solved"]["mindgym"] == 0.9 and optimal["test_mazes"] == 80


@pytest.mark.slow
@pytest.mark.parametrize("part", list(TRAIN_TINY))
def test_every_training_part_runs_on_cpu_and_gives_its_seed_rows(tmp_path, part):
    overrides = [f"{part}:{o}" for o in TRAIN_TINY[part]]
    main(
        [
            "--device",
            "cpu",
            "--out",
            str(tmp_path),
            "--parts",
            part,
            "--episodes",
            "2",
            "--bwr-minutes",
            "1",
            "--agiformer-minutes",
            "1",
            "--echo-minutes",
            "1",
            "--overrides",
            *overrides,
        ]
    )
    saved = json.loads((tmp_path / "parts" / f"{part}.json").read_text())
    seed = "poh_hrm" if part.startswith("poh") else part
    assert saved["rows"] and {r["seed"] for r in saved["rows"]} == {seed}
    assert all(r["mindgym"] is not None for r in saved["rows"])
    assert f"--parts {part}" in saved["command"] and seed in SEEDS
    assert (tmp_path / "runs" / part / "checkpoints" / "latest.pt").is_file()
    if seed == "poh_hrm":  # solved >= within 1.05x (the seed's "optimal") >= exact, from the same walks
        value = {r["measure"].split()[2]: r["mindgym"] for r in saved["rows"] if "12x12" in r["measure"]}
        assert value["solved"] >= value["optimal"] >= value["exact"]


def test_the_agiformer_part_spends_its_minutes_on_the_backbone_with_overrides_last(tmp_path, monkeypatch):
    """The seed trained its byte model alone and both rows score the backbone: no engine RL steps, unless
    an --overrides item turns them back on."""
    trained_with = []

    class Stop(Exception):
        pass

    def train(runner, preset, minutes, device, run_dir, extra):
        trained_with.append((runner, preset, minutes, extra))
        raise Stop

    monkeypatch.setattr(seed_fidelity_parts, "train", train)
    again = "agiformer:engine.interleave.rl_steps=1"
    args = parse_args(["--out", str(tmp_path), "--parts", "agiformer", "--overrides", again])
    with pytest.raises(Stop):
        seed_fidelity_parts.BY_NAME["agiformer"].measure(args, torch.device("cpu"))
    assert trained_with == [
        ("generation", "agiformer", 3.0, ["engine.interleave.rl_steps=0", "engine.interleave.rl_steps=1"])
    ]
    schedule = compose_config("generation", ["preset=agiformer", "engine.interleave.rl_steps=0"], tiny=False)
    interleave = InterleaveSchedule(**schedule.engine.interleave)
    assert {interleave.phase(step) for step in range(2000)} == {"supervised"}

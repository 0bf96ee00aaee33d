"""bench.engine_ablation end to end on the smallest settings: every arm measured, written and tabulated."""

import json

from bench.engine_ablation import ARMS, ENGINE_ARMS, main


def test_ablation_reports_every_arm_with_success_reward_and_engine_values(tmp_path):
    argv = (
        "--device cpu --threads 1 --families associative --levels associative=kv1-v4-q1-t4 --budget-s 0.2 "
        "--seeds 0 1 --schedules after --eval-episodes 8 --envs 4 --rollout-steps 4 --d-model 16 "
        f"--layers 1 --heads 1 --out {tmp_path}"
    )
    main(argv.split())
    report = json.loads((tmp_path / "engine_ablation.json").read_text())
    family = report["families"]["associative"]
    assert len(family["per_seed"]) == 2
    cells = family["mean_se"]
    assert set(cells) == {"greedy", "sampled", *(f"{arm}-after" for arm in ENGINE_ARMS)}
    for cell, values in cells.items():
        assert 0.0 <= values["success"][0] <= 1.0 and values["success"][1] >= 0.0
        assert "reward" in values
        assert ("temperature" in values) == (cell.split("-")[0] in ENGINE_ARMS)
    assert "step_temperature_mean" in cells["conditioned-after"]
    table = (tmp_path / "engine_ablation.md").read_text()
    assert all(f"| {arm}" in table for arm in ARMS)

from bench.runner_throughput import main


def test_loop_steps_add_the_loops_throughput_and_the_data_share_of_a_step(tmp_path):
    timing = ["--device", "cpu", "--runner", "maze", "--repeats", "2", "--loop-steps", "8", "--no-record"]
    overrides = ["--override", "trainer.supervised.batch_size=4", "--override", "backbone.n_layers=1"]
    variant = ["--variant", "trainer.supervised.prefetch_batches=4"]
    table = main([*timing, "--supervised-only", *overrides, *variant, "--profile-dir", str(tmp_path)])
    header, _, *rows = table.splitlines()
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert len(rows) == 2 and "rl_env_steps_per_s" not in columns  # the variant's row; no RL, no eval
    for row in rows:
        values = dict(zip(columns, (c.strip() for c in row.strip("|").split("|")), strict=True))
        assert float(values["loop_tokens_per_s"]) > 0 and 0 <= float(values["pad_pct"]) < 100
        assert 0 < float(values["data_ms"]) < float(values["loop_ms"])
    assert rows[1].count("prefetch_batches=4") == 1
    assert all(row.strip("|").split("|")[columns.index("graphs")].strip() == "0" for row in rows)  # eager CPU
    for row in ("maze_0", "maze_1"):  # each row's profiled steps: ops by time and the timeline
        assert "aten::" in (tmp_path / f"{row}.txt").read_text() and (tmp_path / f"{row}.json").stat().st_size

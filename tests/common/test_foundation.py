"""Device and seeding helpers, the level ladder and the benchmark harness."""

import random

import numpy as np
import pytest
import torch

from bench.harness import Benchmark, time_call
from envs.common import LevelLadder
from foundation import make_generator, resolve_device, rng_state, seed_everything, set_rng_state
from tests.common.counter_env import CounterLevel


def test_auto_device_is_cpu_without_accelerators():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and torch.backends.mps.is_available():
        expected = "mps"
    assert resolve_device("auto").type == expected


def test_missing_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="Unknown device"):
        resolve_device("tpu7")


def test_component_generators_are_reproducible_and_independent():
    a1 = torch.rand(4, generator=make_generator(7, "maze"))
    a2 = torch.rand(4, generator=make_generator(7, "maze"))
    b = torch.rand(4, generator=make_generator(7, "recall"))
    assert torch.equal(a1, a2)
    assert not torch.equal(a1, b)


def test_rng_state_roundtrip_restores_every_stream():
    seed_everything(3)
    state = rng_state()
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first
    torch.save(state, "/tmp/_mindgym_rng.pt")
    assert torch.load("/tmp/_mindgym_rng.pt", weights_only=True)["numpy"]["pos"] == state["numpy"]["pos"]


def test_level_ladder_resolves_and_appends_custom_levels():
    ladder = LevelLadder([CounterLevel("easy", 2), CounterLevel("hard", 5)], CounterLevel)
    assert ladder.index("hard") == 1
    assert ladder.index(0) == 0
    assert ladder.index({"name": "custom", "length": 9}) == 2
    assert ladder.index(CounterLevel("custom", 9)) == 2
    with pytest.raises(ValueError, match="names"):
        ladder.index("nope")
    with pytest.raises(ValueError, match="index"):
        ladder.index(7)
    with pytest.raises(ValueError, match="accepted fields"):
        ladder.index({"name": "x", "size": 3})


def test_benchmark_table_is_recorded(tmp_path):
    bench = Benchmark("unit")
    timing = time_call(lambda: sum(range(100)), warmup=1, repeats=3)
    assert timing.minimum <= timing.median <= timing.maximum
    bench.add(setting="a", steps_per_s=1234567.0)
    out = tmp_path / "b.md"
    table = bench.report(path=out)
    text = out.read_text()
    assert "### unit" in text and "command:" in text and "device:" in text and table in text


def test_a_generator_state_from_another_device_type_is_refused_with_the_fix():
    """A CUDA generator's state (16 bytes) cannot restore a CPU generator: the error says to resume on the
    training device or to evaluate the weights, instead of torch's size mismatch."""
    from foundation import restore_generator

    cuda_like_state = torch.zeros(16, dtype=torch.uint8)
    fix = r"'agent/actions'.*another device type.*hardware\.device=.*runners\.evaluate"
    with pytest.raises(ValueError, match=fix):
        restore_generator(torch.Generator(), cuda_like_state, "agent/actions")
    source = torch.Generator().manual_seed(3)
    target = torch.Generator()
    restore_generator(target, source.get_state(), "sampler")
    assert torch.equal(torch.rand(4, generator=target), torch.rand(4, generator=source))

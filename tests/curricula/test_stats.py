"""Windowed success statistics equal a plain per-level deque, however many episodes end in one step."""

from collections import deque

import torch

from curricula.stats import SuccessStats


def test_windowed_rates_match_a_per_level_deque_reference():
    levels, window, envs = 3, 5, 12
    stats = SuccessStats(levels, window=window)
    reference = [deque(maxlen=window) for _ in range(levels)]
    generator = torch.Generator().manual_seed(0)
    for _ in range(40):
        level = torch.randint(0, levels, (envs,), generator=generator)
        success = torch.rand(envs, generator=generator) < 0.6
        done = torch.rand(envs, generator=generator) < 0.5  # often more than `window` of a level at once
        stats.record(level, success, done)
        for i in torch.nonzero(done).flatten().tolist():  # envs in order: the newest episode is last
            reference[int(level[i])].append(float(success[i]))
        expected = torch.tensor([sum(d) / max(len(d), 1) for d in reference])
        torch.testing.assert_close(stats.rates(), expected)
        assert stats.counts().clamp(max=window).tolist() == [len(d) for d in reference]

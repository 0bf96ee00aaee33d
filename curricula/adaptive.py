"""Success-driven schedules: a frontier level that moves up on mastery (and optionally back down).

``AdaptiveSchedule`` plays most episodes at the frontier and keeps a share on earlier levels;
``MixtureSchedule`` draws each episode's level from a discretised Gaussian centred on the frontier.
Both move the frontier with the same rule, in tensor ops on the env's device (no host sync).
"""

from __future__ import annotations

import torch

from curricula.schedules import Schedule, check_count, check_fraction, check_level
from curricula.stats import SuccessStats


class FrontierSchedule(Schedule):
    """The frontier rule shared by the adaptive and mixture schedules.

    After each step, if the frontier level has at least ``min_episodes`` episodes recorded since the
    frontier moved there and its windowed success rate is at least ``threshold``, the frontier moves up
    one level (never past the last). With ``floor`` set, a rate below ``floor`` (same minimum) moves it
    down one level. The window of the level moved to is cleared, so only fresh episodes judge it.
    """

    _tensor_state = ("frontier", "changes")

    def __init__(
        self,
        num_levels: int,
        threshold: float = 0.8,
        min_episodes: int = 50,
        floor: float | None = None,
        start_level: int = 0,
        window: int = 100,
    ):
        super().__init__(num_levels, window)
        self.threshold = check_fraction("threshold", threshold)
        self.min_episodes = check_count("min_episodes", min_episodes, minimum=1)
        self.floor = None if floor is None else check_fraction("floor", floor)
        if self.floor is not None and self.floor >= self.threshold:
            raise ValueError(
                f"floor ({self.floor}) must be below threshold ({self.threshold}), or the frontier would "
                "move back and forth; lower floor or pass floor=None."
            )
        self.frontier = torch.tensor(check_level("start_level", start_level, num_levels))
        self.changes = torch.zeros((), dtype=torch.long)
        self._ladder = torch.arange(num_levels)

    def to(self, device: str | torch.device) -> FrontierSchedule:
        super().to(device)
        self._ladder = self._ladder.to(self.device)
        return self

    def update(
        self, stats: SuccessStats, levels: torch.Tensor, success: torch.Tensor, done: torch.Tensor
    ) -> None:
        frontier = self.frontier
        at = frontier.reshape(1)  # index_select, not indexing: a device op, never a host read
        enough = (stats.counts().index_select(0, at) >= self.min_episodes).reshape(())
        rate = stats.rates().index_select(0, at).reshape(())
        up = enough & (rate >= self.threshold) & (frontier < self.num_levels - 1)
        moved = frontier + up.long()
        if self.floor is not None:
            down = enough & (rate < self.floor) & (frontier > 0)
            moved = moved - down.long()
        changed = moved != frontier
        stats.clear((self._ladder == moved) & changed)
        self.frontier = moved
        self.changes = self.changes + changed.long()

    def level(self) -> torch.Tensor:
        return self.frontier


class AdaptiveSchedule(FrontierSchedule):
    """Play at the frontier; a ``replay`` share of episodes goes uniformly to the levels below it."""

    name = "adaptive"

    def __init__(
        self,
        num_levels: int,
        threshold: float = 0.8,
        min_episodes: int = 50,
        floor: float | None = None,
        replay: float = 0.2,
        start_level: int = 0,
        window: int = 100,
    ):
        super().__init__(num_levels, threshold, min_episodes, floor, start_level, window)
        self.replay = check_fraction("replay", replay)

    def probabilities(self) -> torch.Tensor:
        earlier = (self._ladder < self.frontier).float()
        has_earlier = (self.frontier > 0).float()
        at_frontier = self._one_hot(self.frontier) * (1.0 - self.replay * has_earlier)
        return at_frontier + earlier * (self.replay / earlier.sum().clamp(min=1.0))


class MixtureSchedule(FrontierSchedule):
    """Each episode's level is drawn from exp(-(level - frontier)^2 / (2 spread^2)) over the ladder."""

    name = "mixture"

    def __init__(
        self,
        num_levels: int,
        threshold: float = 0.8,
        min_episodes: int = 50,
        floor: float | None = None,
        spread: float = 1.0,
        start_level: int = 0,
        window: int = 100,
    ):
        super().__init__(num_levels, threshold, min_episodes, floor, start_level, window)
        if isinstance(spread, bool) or not isinstance(spread, int | float) or spread <= 0:
            raise ValueError(f"spread must be a positive number of levels, got {spread!r}.")
        self.spread = float(spread)

    def probabilities(self) -> torch.Tensor:
        distance = (self._ladder - self.frontier).float()
        weights = torch.exp(-0.5 * (distance / self.spread) ** 2)
        return weights / weights.sum()

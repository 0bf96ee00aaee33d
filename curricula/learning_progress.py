"""Learning-progress schedule: sample levels where the success rate is changing fastest.

Follows Kanitscheider et al. 2021 (https://arxiv.org/abs/2106.14876), as implemented in learning-progress
curricula such as Syllabus's: per level, a fast and a slow exponential moving average of the success
rate; learning progress is ``|reweight(fast) - reweight(slow)|``, where the reweighting undoes the lag of
the slow average near 0 and 1. With ``weighting="proportional"`` (default) levels are sampled in
proportion to their progress; with ``"sigmoid"`` (Syllabus's choice) levels with positive progress are
z-scored, squashed by a sigmoid and normalised. Either way all levels get equal mass while no level shows
progress, and an ``explore`` share is spread uniformly so no level is starved. All updates are tensor ops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from curricula.schedules import Schedule, check_fraction
from curricula.stats import SuccessStats


class LearningProgressSchedule(Schedule):
    """Levels sampled in proportion to the absolute change of their success rate (or its squashed z-score).

    ``ema`` is the fast average's step size (the slow one follows the fast one at the same rate);
    ``p_theta`` the reweighting constant of the paper; ``explore`` the uniform share; ``weighting``
    "proportional" or "sigmoid".
    """

    name = "learning_progress"
    _tensor_state = ("fast", "slow")

    def __init__(
        self,
        num_levels: int,
        ema: float = 0.1,
        p_theta: float = 0.1,
        explore: float = 0.05,
        weighting: str = "proportional",
        window: int = 100,
    ):
        super().__init__(num_levels, window)
        if weighting not in ("proportional", "sigmoid"):
            raise ValueError(f"weighting must be 'proportional' or 'sigmoid', got {weighting!r}.")
        self.weighting = weighting
        self.ema = check_fraction("ema", ema)
        if self.ema == 0.0:
            raise ValueError("ema must be in (0, 1]; with 0 the averages never move.")
        self.p_theta = check_fraction("p_theta", p_theta)
        if not 0.0 < self.p_theta < 0.5:
            raise ValueError(f"p_theta must lie in (0, 0.5), got {p_theta!r}.")
        self.explore = check_fraction("explore", explore)
        self.fast = torch.zeros(num_levels)
        self.slow = torch.zeros(num_levels)

    def update(
        self, stats: SuccessStats, levels: torch.Tensor, success: torch.Tensor, done: torch.Tensor
    ) -> None:
        """One averaging step per level that finished episodes, weighted by how many finished."""
        onehot = F.one_hot(levels.long(), self.num_levels).float() * done.unsqueeze(1).float()
        finished = onehot.sum(0)
        mean = (onehot * success.float().unsqueeze(1)).sum(0) / finished.clamp(min=1.0)
        step = 1.0 - (1.0 - self.ema) ** finished  # n episodes at rate a = one step of 1 - (1 - a)^n
        self.fast = self.fast + step * (mean - self.fast)
        self.slow = self.slow + step * (self.fast - self.slow)

    def progress(self) -> torch.Tensor:
        """Learning progress of each level, shape (num_levels,)."""
        return (self._reweight(self.fast) - self._reweight(self.slow)).abs()

    def probabilities(self) -> torch.Tensor:
        lp = self.progress()
        positive = lp > 0
        considered = torch.where(positive.any(), positive, torch.ones_like(positive)).float()
        if self.weighting == "proportional":
            weights = torch.where(positive.any(), lp, considered)
        else:
            n = considered.sum()
            mean = (lp * considered).sum() / n
            std = (((lp - mean) ** 2 * considered).sum() / n).sqrt()
            z = (lp - mean) / torch.where(std > 0, std, torch.ones_like(std))
            weights = torch.sigmoid(z) * considered
        learned = weights / weights.sum()
        return (1.0 - self.explore) * learned + self.explore / self.num_levels

    def level(self) -> torch.Tensor:
        return self.probabilities().argmax()

    def _reweight(self, p: torch.Tensor) -> torch.Tensor:
        theta = self.p_theta
        return p * (1.0 - theta) / (p + theta * (1.0 - 2.0 * p))

"""Batched bookkeeping of the n-grams a batch of texts has written, for the diversity-type rewards.

``NGramRepeats`` keeps each row's n-gram keys (B, capacity) and counts how many repeat an earlier one of
the same row (distinct-n, seq-rep-n). ``BatchNGramCounts`` counts every n-gram the rows currently hold in
one hashed table on the device, so a row can ask which of its n-grams no other row has written. All
updates are tensor ops over the whole batch: no Python loop over rows, no host sync.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from envs.generation.tokens import NUM_BYTES

BATCH_TABLE_SIZE = 4_194_301  # a prime near 2**22: n-gram keys are bucketed by key % size


class NGramRepeats:
    """Per-row record of a growing text's n-grams: how many there are and how many repeat an earlier one.

    With ``track_multiplicity`` it also keeps, for each recorded n-gram, how often the row holds it.
    """

    def __init__(
        self, n: int, num_rows: int, capacity: int, device: torch.device, track_multiplicity: bool = False
    ):
        self.n = n
        self.keys = torch.zeros(num_rows, max(capacity - n + 1, 1), dtype=torch.long, device=device)
        self.repeats = torch.zeros(num_rows, dtype=torch.long, device=device)
        self.columns = torch.arange(self.keys.shape[1], device=device)
        self.multiplicity = torch.zeros_like(self.keys, dtype=torch.int32) if track_multiplicity else None

    def reset(self, mask: torch.Tensor) -> None:
        self.repeats = self.repeats.masked_fill(mask, 0)

    def grow(self, capacity: int) -> None:
        """Make room for texts of up to ``capacity`` bytes (keeps what is recorded)."""
        extra = capacity - self.n + 1 - self.keys.shape[1]
        if extra > 0:
            self.keys = F.pad(self.keys, (0, extra))
            if self.multiplicity is not None:
                self.multiplicity = F.pad(self.multiplicity, (0, extra))
            self.columns = torch.arange(self.keys.shape[1], device=self.keys.device)

    def add(self, recent: torch.Tensor, count: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """Record the n-gram ending at the newest byte and return its key. ``recent`` packs the last bytes
        (newest lowest), ``count`` is the number of bytes written including it; rows where ``active`` is
        False are unchanged.
        """
        key = recent % (NUM_BYTES**self.n)
        index = (count - self.n).clamp(0, self.keys.shape[1] - 1)[:, None]  # column of the new n-gram
        valid = active & (count >= self.n)
        matches = (self.keys == key[:, None]) & (self.columns < index) & valid[:, None]
        self.repeats = self.repeats + matches.any(dim=1).long()
        _write(self.keys, index, key, valid)
        if self.multiplicity is not None:
            self.multiplicity = self.multiplicity + matches.int()
            _write(self.multiplicity, index, 1 + matches.sum(dim=1, dtype=torch.int32), valid)
        return key

    def num_ngrams(self, count: torch.Tensor) -> torch.Tensor:
        return (count - self.n + 1).clamp(min=0)

    def recorded(self, count: torch.Tensor) -> torch.Tensor:
        """(B, capacity) bool: which columns of ``keys`` hold an n-gram of the current text."""
        return self.columns < self.num_ngrams(count)[:, None]


class BatchNGramCounts:
    """How many times each (hashed) n-gram occurs across all rows' current texts."""

    def __init__(self, device: torch.device, size: int = BATCH_TABLE_SIZE):
        self.size = size
        self.counts = torch.zeros(size, dtype=torch.int32, device=device)

    def add(self, key: torch.Tensor, valid: torch.Tensor) -> None:
        self.counts.index_add_(0, key % self.size, valid.int())

    def remove(self, keys: torch.Tensor, recorded: torch.Tensor) -> None:
        """Forget the n-grams ``keys`` (B, C) where ``recorded`` (B, C) is True (texts that end)."""
        self.counts.index_add_(0, (keys % self.size).flatten(), -recorded.flatten().int())

    def unique_fraction(self, tracker: NGramRepeats, count: torch.Tensor) -> torch.Tensor:
        """Per row: the fraction of its n-grams that no other row holds (1 for a text too short to have
        one). Hash collisions can only make an n-gram look shared, never unique."""
        recorded = tracker.recorded(count)
        alone = (self.counts[tracker.keys % self.size] == tracker.multiplicity) & recorded
        total = tracker.num_ngrams(count)
        return torch.where(total > 0, alone.sum(dim=1) / total.clamp(min=1).float(), 1.0)


def _write(target: torch.Tensor, index: torch.Tensor, value: torch.Tensor, where: torch.Tensor) -> None:
    """target[row, index[row]] = value[row] for rows where ``where``, in place."""
    old = target.gather(1, index).squeeze(1)
    target.scatter_(1, index, torch.where(where, value.to(target.dtype), old)[:, None])

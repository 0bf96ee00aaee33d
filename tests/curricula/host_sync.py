"""A test helper that makes any host read of a tensor fail, except inside the vector-env base class.

``.item()``, ``.tolist()``, ``.numpy()``, ``.cpu()``, ``bool()/int()/float()/index`` of a tensor and
``nonzero`` are what would stall a GPU step; on CPU they are free, so CI proves their absence by
patching them. The env base (envs/common/vector.py) is exempt: it checks host-side actions and levels
on purpose and skips those checks for device tensors.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch

SYNC_METHODS = ("item", "tolist", "numpy", "cpu", "nonzero", "__bool__", "__int__", "__float__", "__index__")
EXEMPT = ("envs/common/vector.py",)


class HostSyncError(AssertionError):
    """A tensor was read on the host during a step."""


@contextmanager
def forbid_host_sync() -> Iterator[list[str]]:
    """Within the block, host reads of tensors raise HostSyncError; yields the exempt calls seen."""
    exempt_calls: list[str] = []
    originals = {name: getattr(torch.Tensor, name) for name in SYNC_METHODS}
    original_nonzero = torch.nonzero

    def guarded(name, original):
        def check(*args, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if not caller.endswith(EXEMPT):
                raise HostSyncError(f"host read of a tensor ({name}) from {caller}")
            exempt_calls.append(name)
            return original(*args, **kwargs)

        return check

    try:
        for name, original in originals.items():
            setattr(torch.Tensor, name, guarded(name, original))
        torch.nonzero = guarded("torch.nonzero", original_nonzero)
        yield exempt_calls
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)
        torch.nonzero = original_nonzero

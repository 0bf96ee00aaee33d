"""Device selection shared by every MindGym component."""

from __future__ import annotations

import torch

_ACCEPTED = "'auto', 'cpu', 'cuda', 'cuda:N', 'mps' or a torch.device"


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Return a concrete torch.device; ``"auto"`` (or None) picks CUDA, then MPS, then CPU.

    Asking for a device that is not present fails here, with the fix, instead of deep inside a kernel.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"Unknown device {device!r}; use {_ACCEPTED}.") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"Device {device!r} was requested but CUDA is not available; use device='auto' or 'cpu'."
        )
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ValueError(
            f"Device {device!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)."
        )
    if resolved.type == "mps" and not (
        getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    ):
        raise ValueError(f"Device {device!r} was requested but MPS is not available; use 'auto' or 'cpu'.")
    return resolved

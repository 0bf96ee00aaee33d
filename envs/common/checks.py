"""Input checks shared by the single envs: reset seeds and options, and Discrete actions.

Each check runs before the env changes any state, so a refused call leaves the env usable, and each
error names the argument, the value and the rule.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

import numpy as np

from foundation.seeding import check_seed


def check_reset_arguments(env: str, seed: Any, options: Any) -> int | None:
    """``seed`` as a plain int (or None) for ``env.reset``; ``options`` must be None or empty.

    MindGym's single envs take no reset options: difficulty is set with ``set_level``, which automatic
    resets keep, unlike options.
    """
    seed = check_seed(seed)
    if options is not None and not isinstance(options, Mapping):
        raise TypeError(f"{env}.reset options must be a dict or None, got {type(options).__name__}.")
    if options:
        raise ValueError(
            f"Unknown reset option(s) {sorted(options, key=repr)}; {env} takes none. "
            "Set difficulty with env.unwrapped.set_level(...)."
        )
    return seed


def check_discrete_action(action: Any, n: int, meaning: str = "") -> int:
    """``action`` as an int in [0, n); a ValueError naming the action and the range for anything else.

    Python and NumPy integers (also 0-D integer arrays) pass; bools, floats such as 0.5 (which a cast
    would silently turn into 0) and out-of-range values do not. ``meaning`` says what the actions are.
    """
    rule = f"an int in [0, {n - 1}]" + (f" ({meaning})" if meaning else "")
    if isinstance(action, bool | np.bool_):
        raise ValueError(f"Action must be {rule}, got the bool {action!r}.")
    if isinstance(action, np.ndarray) and action.ndim == 0 and action.dtype.kind in "iu":
        action = action.item()
    try:
        index = operator.index(action)
    except TypeError:
        raise ValueError(f"Action must be {rule}, got {action!r} ({type(action).__name__}).") from None
    if not 0 <= index < n:
        raise ValueError(f"Action must be {rule}, got {index}.")
    return index

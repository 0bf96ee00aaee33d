"""Regression: recall observations, final observations and infos lie in their declared spaces on every step.

TorchRL's ``check_env_specs`` over ``GymWrapper(gym.make_vec(..., autoreset_mode=SAME_STEP))`` failed for
Copy-v0; the cause was TorchRL's reader of ``final_obs`` (see docs/integrations.md), not these envs, and
this test pins down the envs' side of that contract without TorchRL: random play over the default ladders,
sub-envs at mixed levels, single and vector, in every autoreset mode.
"""

import pytest

from envs.recall.needle import needle_levels
from tests.integrations.contract import AUTORESET_MODES, play_single, play_vector

RECALL_IDS = ["mindgym/Copy-v0", "mindgym/RepeatCopy-v0", "mindgym/AssociativeRecall-v0", "mindgym/Needle-v0"]
# The needle's default ladder reaches 64 KiB contexts, each autoreset regenerating the batch that wide (~17 s
# here); up to 4 KiB its levels still differ in width, answer position and filler as the ladder does.
LADDERS = {"mindgym/Needle-v0": {"levels": needle_levels()[:7]}}


@pytest.mark.parametrize("obs_mode", ["sequence", "stream"])
@pytest.mark.parametrize("env_id", RECALL_IDS)
def test_single_env_stays_in_its_spaces(env_id, obs_mode):
    assert play_single(env_id, obs_mode, steps=300, **LADDERS.get(env_id, {})) > 0


@pytest.mark.parametrize("autoreset_mode", AUTORESET_MODES)
@pytest.mark.parametrize("obs_mode", ["sequence", "stream"])
@pytest.mark.parametrize("env_id", RECALL_IDS)
def test_vector_env_stays_in_its_spaces(env_id, obs_mode, autoreset_mode):
    assert play_vector(env_id, obs_mode, autoreset_mode, steps=300, **LADDERS.get(env_id, {})) > 0

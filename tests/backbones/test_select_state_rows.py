"""``select_state_rows`` keeps a stream going for some of its rows: the kept rows' logits are those of the
whole batch's stream (the KV caches and memory states are gathered, a reserved cache keeps its room)."""

from __future__ import annotations

import pytest
import torch

from agents.backbones import build_backbone
from tests.backbones.helpers import VARIANTS, VOCAB, tiny


@pytest.mark.parametrize("variant", ["transformer", "hebbian", "external", "titans", "act_recursion"])
@pytest.mark.parametrize("reserve", [None, 20])
def test_a_stream_of_selected_rows_continues_as_the_whole_batch_does(variant, reserve):
    torch.manual_seed(0)
    model = build_backbone(tiny(**VARIANTS[variant])).eval()
    tokens = torch.randint(0, VOCAB, (5, 14))
    rows = torch.tensor([1, 3, 4])
    with torch.no_grad():
        state = model(tokens[:, :8]).state
        if reserve is not None:
            state = model.reserve_state(state, reserve)
        whole, kept = state, model.select_state_rows(state, rows)
        for t in range(8, 14):
            out, kept_out = (
                model(tokens[:, t : t + 1], state=whole),
                model(tokens[rows, t : t + 1], state=kept),
            )
            torch.testing.assert_close(kept_out.logits, out.logits[rows], atol=2e-5, rtol=1e-4)
            whole, kept = out.state, kept_out.state

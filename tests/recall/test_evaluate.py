"""Grid evaluation: an oracle scores 1, a blind model scores near chance, JSON and PNG are written."""

import json

import pytest
import torch
from torch import nn

from agents.backbones.base import Backbone, BackboneOutput
from envs.recall.evaluate import associative_grid, evaluate_grid, needle_grid
from envs.recall.tokens import VOCAB_SIZE
from tests.recall.oracle_agent import OracleModel


def test_oracle_scores_one_on_a_needle_grid(tmp_path):
    grid = needle_grid(context_bytes=[64, 128], depths=[0.0, 0.5, 1.0], filler="random")
    report = evaluate_grid(OracleModel(_task_for(grid)), grid, batch_size=2)
    assert report.exact_match == [[1.0, 1.0]] * 3 and report.accuracy == [[1.0, 1.0]] * 3
    json_path, png_path = report.save(tmp_path, stem="needle")
    data = json.loads(json_path.read_text())
    assert data["row_name"] == "depth" and data["col_values"] == [64, 128] and data["sequences_per_cell"] == 2
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class ConstantBackbone(Backbone):
    """Always predicts the same token: a Backbone whose accuracy is exactly the chance of that token."""

    vocab_size, d_model, n_layers, n_heads = VOCAB_SIZE, 4, 1, 1

    def __init__(self, token: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(VOCAB_SIZE))
        with torch.no_grad():
            self.bias[token] = 1.0

    def forward(self, tokens, state=None, *, head_scale=None, return_layers=False):
        logits = self.bias.expand(*tokens.shape, VOCAB_SIZE)
        return BackboneOutput(logits=logits, hidden=torch.zeros(*tokens.shape, 4))

    def output_logits(self, hidden):
        return hidden


def test_backbone_on_associative_grid_scores_chance_and_skips_invalid_cells(tmp_path):
    grid = associative_grid(pairs=[2, 8], lengths=[8, 64], vocab=16)
    model = ConstantBackbone(token=8)
    model.train()
    report = evaluate_grid(model, grid, batch_size=64, num_batches=2)
    assert model.training  # restored after evaluation
    assert report.accuracy[1][0] is None and report.exact_match[1][0] is None  # 8 pairs do not fit 8 tokens
    # Values are uniform over the 8 upper symbols, so always answering 8 is right 1/8 of the time.
    for value in (report.accuracy[0][0], report.accuracy[0][1], report.accuracy[1][1]):
        assert 0.05 < value < 0.22
    json_path, png_path = report.save(tmp_path, metric="accuracy")
    assert json.loads(json_path.read_text())["accuracy"][1][0] is None and png_path.exists()


def test_bad_model_and_arguments_raise_value_error():
    grid = needle_grid(context_bytes=[64], depths=[0.5], filler="random")
    with pytest.raises(ValueError, match=r"logits \(B, T, V\)"):
        evaluate_grid(lambda tokens: tokens.float(), grid)
    with pytest.raises(ValueError, match="vocab_size"):
        evaluate_grid(lambda tokens: torch.zeros(*tokens.shape, 10), grid)
    with pytest.raises(ValueError, match="no valid cell"):
        evaluate_grid(OracleModel(_task_for(grid)), associative_grid(pairs=[64], lengths=[16]))
    report = evaluate_grid(OracleModel(_task_for(grid)), grid, batch_size=1)
    with pytest.raises(ValueError, match="metric"):
        report.save("unused", metric="f1")


def _task_for(grid):
    from envs.recall.task import RecallTask

    return RecallTask(grid.family, levels=[lv for row in grid.levels for lv in row if lv is not None])


def test_ladder_grid_evaluation_scores_the_ladders_axes_and_marks_its_levels():
    from envs.recall import CopyLevel, RecallTask
    from envs.recall.evaluate import evaluate_ladder_grid

    task = RecallTask("copy", levels=[CopyLevel("a", 2, 4), CopyLevel("b", 4, 8)])
    report, context = evaluate_ladder_grid(OracleModel(task), task, batch_size=2)
    assert (report.row_values, report.col_values) == ([2, 4], [4, 8])
    assert report.exact_match == [[1.0, 1.0], [1.0, 1.0]]
    assert context["trained"] == [[True, False], [False, True]]  # the ladder's own two levels

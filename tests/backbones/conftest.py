"""Backbone tests use tiny models, which run fastest (and steadiest on a shared CI box) on one thread."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

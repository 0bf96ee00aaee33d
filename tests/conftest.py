"""Shared pytest setup: GPU tests are skipped where CUDA is absent, and tests run torch on one thread.

The tests use tiny models and small batches, where torch's intra-op thread pool costs far more than it
gives and stalls badly on a busy 2-core CI machine.
"""

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

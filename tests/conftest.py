import os

import pytest
import torch

os.environ.setdefault("DGLBACKEND", "pytorch")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)

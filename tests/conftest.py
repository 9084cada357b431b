import os

import pytest
import torch

os.environ.setdefault("DGLBACKEND", "pytorch")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def train_seed() -> int:
    """The seed of a test whose threshold is on a trained result: 0, or ``DGLT_SEED``.

    ``notebooks/audit.py`` reruns those tests under other seeds and CPU code paths and reads
    the values they record (``record_property``) to measure each threshold's margin.
    """
    return int(os.environ.get("DGLT_SEED", "0"))

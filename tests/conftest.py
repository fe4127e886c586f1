import os

import pytest
import torch

# Two cores on CI: one thread per test process keeps timings stable and avoids oversubscription.
torch.set_num_threads(1)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)

"""Shared fixtures: a device fixture that runs on CPU always and on CUDA when present."""

import os

import pytest
import torch

os.environ.setdefault("EOSLAB_QUICK", "1")

# One intra-op thread: the tests' tensors are small, and while the browser tests run a
# Voila server, its kernels and Chromium share the machine's cores with this process;
# oversubscribed BLAS threads made small-net tests 10-70x slower there.
torch.set_num_threads(1)

# the CUDA case is also marked `cuda`, so `pytest -m cuda` (scripts/gpu-check) runs it
DEVICES = ["cpu"] + ([pytest.param("cuda", marks=pytest.mark.cuda)]
                     if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    """Each test using it runs on every available device."""
    return torch.device(request.param)


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path, monkeypatch):
    """Tests never touch the user's store: EOSLAB_STORE points at a fresh folder."""
    monkeypatch.setenv("EOSLAB_STORE", str(tmp_path / "store"))

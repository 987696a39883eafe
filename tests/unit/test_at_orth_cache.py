"""The orthogonal-activation cache: exact values by item index, in memory and on disk.

Why: training gathers the orthogonal network's activations from this cache instead of
running the network on every batch; a wrong index or a lossy store would silently change
the AT term, so the gathered rows are compared with a fresh forward of the same items.
"""
import os

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from xferlab.at.taps import OrthCache, orth_activation, tap_end
from xferlab.at.vgg import build_vgg
from xferlab.data.rows import Rows
from xferlab.errors import UserError


class Listed(Dataset):
    """A plain (non-tensor) dataset of numpy items, as a reader might return."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.items = [(x[i].numpy(), int(y[i])) for i in range(len(x))]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


def setup(n: int = 21):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 32, 33, generator=g), torch.randint(0, 3, (n,), generator=g)
    return build_vgg("vgg16_tiny", 3, seed=5).eval().requires_grad_(False), x, y


@pytest.mark.parametrize("layer", [2, 7])
def test_disk_equals_memory_equals_fresh_forward(tmp_path, layer):
    orth, x, y = setup()
    end, cpu = tap_end("conv", layer), torch.device("cpu")
    idx = torch.tensor([20, 3, 3, 0, 11, 7])  # unordered, repeated, both ends
    fresh = orth_activation(orth, x[idx], end)  # (6, C, H, W)
    with OrthCache.build(orth, TensorDataset(x, y), end, cpu, chunk=8) as mem, \
            OrthCache.build(orth, Listed(x, y), end, cpu, max_bytes=0, cache_dir=str(tmp_path), chunk=8) as disk:
        assert mem.in_memory and not disk.in_memory and len(disk) == len(x)
        assert isinstance(disk.store, Rows) and str(tmp_path) in str(disk.store.path)
        torch.testing.assert_close(mem.gather(idx), fresh, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(disk.gather(idx), mem.gather(idx), rtol=0, atol=0)  # same chunks: bit-equal
        assert len(os.listdir(tmp_path)) == 1  # one fresh directory under the caller's
    assert os.listdir(tmp_path) == []  # deleted on close; the caller's directory stays


def test_default_row_file_dir_is_removed_and_empty_split_is_an_error():
    orth, x, y = setup(4)
    cache = OrthCache.build(orth, TensorDataset(x, y), tap_end("conv", 1), torch.device("cpu"), max_bytes=1)
    where = cache.tmpdir
    assert where is not None and os.path.isdir(where)
    cache.close()
    cache.close()  # idempotent
    assert not os.path.exists(where)
    with pytest.raises(UserError, match="empty"):
        OrthCache.build(orth, TensorDataset(x[:0], y[:0]), 3, torch.device("cpu"))


def test_the_in_memory_budget_follows_the_memory_this_process_may_take():
    """A run under a memory cap spills its orthogonal activations to disk: the default
    budget is at most 1 GiB and at most an eighth of the memory still available (which is
    at most the machine's MemAvailable)."""
    from xferlab.at.taps import MAX_CACHE_BYTES, cache_budget
    from xferlab.data.rows import available_memory

    meminfo = int(open("/proc/meminfo").read().split("MemAvailable:")[1].split()[0]) * 1024
    assert 0 < available_memory() <= meminfo * 1.05  # 5 %: memory moves between the two reads
    budget = cache_budget(torch.device("cpu"))
    assert 0 < budget <= MAX_CACHE_BYTES and budget <= available_memory() // 8 + (64 << 20)

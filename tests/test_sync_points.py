"""The sync-point counter itself: it must see what it claims to see, or a 'no sync' test proves nothing."""

import torch

from sync_points import SyncPoints


def test_counts_each_kind_of_read_back():
    x = torch.randn(6)
    with SyncPoints() as sync:
        x.sum().item()
        bool(x.sum() > 0)
        x.tolist()
        float(x.max())
        x.nonzero()
        x.cpu()
        x.to("cpu")
        x[x > 0]
    assert sync.calls == ["item", "__bool__", "tolist", "__float__", "nonzero", "cpu", "to", "__getitem__"]


def test_device_side_work_counts_nothing():
    x = torch.randn(4, 3, requires_grad=True)
    with SyncPoints() as sync:
        loss = (x * 2).pow(2).mean()
        loss.backward()
        total = torch.zeros(())
        total += loss.detach()
        ok = torch.isfinite(total).all()
        torch.where(x > 0, x, torch.zeros_like(x))
        x[torch.tensor([0, 2])]
        x.to(torch.float64)
    assert sync.calls == []
    assert ok.dtype == torch.bool

import pytest
import torch
import torch.nn.functional as F

from infomin.memory import MemoryBank


def test_sample_puts_the_own_entry_first():
    bank = MemoryBank(size=10, dim=4)
    index = torch.tensor([3, 7])
    rows = bank.sample(index, num_negatives=5)
    assert rows.shape == (2, 6, 4)
    assert torch.equal(rows[:, 0], bank.bank[index])
    # every drawn row is some row of the bank
    flat = rows.reshape(-1, 4)
    assert all((bank.bank == r).all(dim=1).any() for r in flat)


def test_update_is_momentum_then_normalise():
    bank = MemoryBank(size=6, dim=3, momentum=0.5)
    old = bank.bank.clone()
    feats = F.normalize(torch.randn(2, 3), dim=1)
    index = torch.tensor([1, 4])
    bank.update(feats, index)
    expected = F.normalize(0.5 * old[index] + 0.5 * feats, dim=1)
    assert torch.allclose(bank.bank[index], expected)
    untouched = [0, 2, 3, 5]
    assert torch.equal(bank.bank[untouched], old[untouched])


def test_bad_index_and_settings_get_clear_errors():
    bank = MemoryBank(size=4, dim=2)
    with pytest.raises(ValueError, match="dataset_size"):
        bank.sample(torch.tensor([4]), 3)
    with pytest.raises(ValueError, match="momentum"):
        MemoryBank(size=4, dim=2, momentum=1.0)
    with pytest.raises(ValueError, match="dataset size"):
        MemoryBank(size=0, dim=2)

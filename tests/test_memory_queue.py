import pytest
import torch

from infomin.memory import Queue


def test_enqueue_writes_in_order_and_wraps_around():
    queue = Queue(size=5, dim=2)
    first = torch.arange(6.0).view(3, 2)
    queue.enqueue(first)
    assert int(queue.ptr) == 3
    assert torch.equal(queue.queue[:3], first)
    second = torch.arange(100.0, 106.0).view(3, 2)
    queue.enqueue(second)  # rows 3, 4, then wraps to 0
    assert int(queue.ptr) == 1
    assert torch.equal(queue.queue[3:5], second[:2])
    assert torch.equal(queue.queue[0], second[2])
    assert torch.equal(queue.queue[1:3], first[1:])


def test_more_keys_than_slots_keeps_the_newest():
    queue = Queue(size=3, dim=1)
    queue.enqueue(torch.arange(7.0).view(7, 1))
    # the same as writing 0..6 one by one at slots 0,1,2,0,1,2,0
    assert int(queue.ptr) == 1
    assert queue.queue.flatten().tolist() == [6.0, 4.0, 5.0]
    queue.enqueue(torch.tensor([[9.0]]))
    assert queue.queue.flatten().tolist() == [6.0, 9.0, 5.0]


def test_pointer_and_keys_survive_a_state_dict_round_trip(tmp_path):
    queue = Queue(size=8, dim=4)
    queue.enqueue(torch.randn(5, 4))
    torch.save(queue.state_dict(), tmp_path / "q.pt")
    restored = Queue(size=8, dim=4)
    restored.load_state_dict(torch.load(tmp_path / "q.pt", weights_only=True))
    assert int(restored.ptr) == 5 and torch.equal(restored.queue, queue.queue)
    keys = torch.randn(4, 4)
    queue.enqueue(keys)
    restored.enqueue(keys)
    assert int(restored.ptr) == 1 and torch.equal(restored.queue, queue.queue)


def test_negatives_is_a_snapshot_and_initial_keys_are_unit_norm():
    queue = Queue(size=4, dim=3)
    assert torch.allclose(queue.queue.norm(dim=1), torch.ones(4))
    snapshot = queue.negatives()
    queue.enqueue(torch.zeros(2, 3))
    assert not torch.equal(snapshot, queue.queue)
    with pytest.raises(ValueError, match="shape"):
        queue.enqueue(torch.zeros(2, 5))

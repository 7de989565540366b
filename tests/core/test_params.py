"""Parameter dicts and their flat view, against hand-built vectors."""

import pytest
import torch

from eoslab.core.params import flatten, unflatten


def test_flatten_is_the_concatenation_in_key_order():
    theta = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([7.0, 8.0])}
    assert flatten(theta).tolist() == [0, 1, 2, 3, 4, 5, 7, 8]
    assert flatten([theta["b"], theta["w"]]).tolist() == [7, 8, 0, 1, 2, 3, 4, 5]


def test_unflatten_inverts_flatten_also_for_a_batch_of_vectors():
    theta = {"w": torch.randn(2, 3, dtype=torch.float64), "b": torch.randn(3, dtype=torch.float64)}
    back = unflatten(flatten(theta), theta)
    assert all(torch.equal(back[k], theta[k]) for k in theta)
    batch = torch.stack([flatten(theta), 2 * flatten(theta)])
    parts = unflatten(batch, theta)
    assert parts["w"].shape == (2, 2, 3) and torch.equal(parts["w"][1], 2 * theta["w"])


def test_unflatten_names_a_wrong_size():
    with pytest.raises(ValueError, match="vector has 4 entries but the parameters have 9"):
        unflatten(torch.zeros(4), {"w": torch.zeros(3, 3)})

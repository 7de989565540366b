import pytest
import torch

from eoslab.losses import accuracy, get_loss


def test_mse_is_half_sum_over_classes_mean_over_examples():
    out = torch.randn(7, 3, dtype=torch.float64)
    tgt = torch.randn(7, 3, dtype=torch.float64)
    expected = sum(0.5 * ((out[i] - tgt[i]) ** 2).sum() for i in range(7)) / 7
    assert torch.allclose(get_loss("mse")(out, tgt), expected)


def test_cross_entropy_accepts_indices_and_one_hot():
    out = torch.randn(5, 4, dtype=torch.float64)
    idx = torch.tensor([0, 3, 1, 1, 2])
    one_hot = torch.nn.functional.one_hot(idx, 4).double()
    ce = get_loss("ce")
    assert torch.allclose(ce(out, idx), ce(out, one_hot))
    assert torch.allclose(ce(out, idx), torch.nn.functional.cross_entropy(out, idx))


def test_sqrt_loss_is_sqrt_of_full_batch_mean():
    out, tgt = torch.randn(6, 2), torch.randn(6, 2)
    loss = get_loss("sqrt-mse")
    assert torch.allclose(loss(out, tgt), get_loss("mse")(out, tgt).sqrt())
    assert torch.allclose(loss.finish(torch.tensor(4.0)), torch.tensor(2.0))


def test_accuracy_with_indices_and_one_hot():
    out = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0]])
    assert float(accuracy(out, torch.tensor([0, 1, 1]))) == pytest.approx(2 / 3)
    assert float(accuracy(out, torch.eye(2)[[0, 1, 1]])) == pytest.approx(2 / 3)


def test_mse_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="does not match target shape"):
        get_loss("mse")(torch.zeros(4, 3), torch.zeros(4, 2))


@pytest.mark.parametrize("bad", ["l1", "", None, 3])
def test_unknown_loss_names_the_allowed_ones(bad):
    with pytest.raises(ValueError, match="allowed: mse"):
        get_loss(bad)

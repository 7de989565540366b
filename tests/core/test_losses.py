import pytest
import torch

from eoslab.core.losses import accuracy, get_loss


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


@pytest.mark.parametrize("name,target_kind", [
    (name, kind) for name in ("mse", "ce", "sqrt-mse", "sqrt-ce")
    for kind in ("one-hot", "soft", "index" if "ce" in name else "scalar-outputs")])
def test_per_copy_equals_per_example_mean_of_each_copy(name, target_kind):
    gen = torch.Generator().manual_seed(3)
    outputs = torch.randn(4, 6, 5, generator=gen, dtype=torch.float64)
    if target_kind == "index":
        target = torch.randint(0, 5, (6,), generator=gen)
    elif target_kind == "soft":
        target = torch.softmax(torch.randn(6, 5, generator=gen, dtype=torch.float64), -1)
    elif target_kind == "scalar-outputs":
        outputs, target = outputs[..., 0], torch.randn(6, generator=gen, dtype=torch.float64)
    else:
        target = torch.nn.functional.one_hot(torch.arange(6) % 5, 5).double()
    loss = get_loss(name)
    got = loss.per_copy(outputs, target)
    ref = torch.stack([loss.per_example_mean(o, target) for o in outputs])
    assert got.shape == (4,)
    torch.testing.assert_close(got, ref, rtol=1e-14, atol=0)


def test_per_copy_of_a_custom_loss_maps_it_over_copies():
    from eoslab.core.losses import Loss

    loss = Loss("l1", lambda out, y: (out - y).abs().sum(-1).mean())
    outputs, target = torch.randn(3, 4, 2, dtype=torch.float64), torch.zeros(4, 2)
    ref = torch.stack([(o - target).abs().sum(-1).mean() for o in outputs])
    torch.testing.assert_close(loss.per_copy(outputs, target.double()), ref)


@pytest.mark.parametrize("name,outputs,target,match", [
    ("mse", (3, 4, 2), (4, 3), r"stacked output shape \(3, 4, 2\) is not \(copies,\) \+ target"),
    ("mse", (3, 4, 2), (4,), r"target shape \(4,\)"),
    ("ce", (3, 4, 2), (5,), r"stacked outputs of shape \(3, 4, 2\).*target of shape \(5,\)"),
    ("ce", (3, 4), (4,), r"stacked outputs of shape \(3, 4\)"),
])
def test_per_copy_rejects_mismatched_shapes_by_name(name, outputs, target, match):
    with pytest.raises(ValueError, match=match):
        get_loss(name).per_copy(torch.zeros(outputs), torch.zeros(target, dtype=torch.long))

import pytest
import torch

from eoslab.core.models import MODEL_NAMES, build_model, count_parameters, has_batchnorm


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_builds_runs_and_is_seeded(name, device):
    shape, outputs = ((1,), 1) if name == "scalar-uv" else ((64,), 10)
    a = build_model(name, shape, outputs, seed=3, device=device, width=8)
    b = build_model(name, shape, outputs, seed=3, device=device, width=8)
    c = build_model(name, shape, outputs, seed=4, device=device, width=8)
    a.eval()
    out = a(torch.randn(5, *shape, device=device))
    assert out.shape == (5, outputs)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def test_seeded_init_does_not_touch_the_global_rng():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    build_model("fc-tanh", (64,), 10, seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_fc_tanh_matches_cohen_shape():
    model = build_model("fc-tanh", (64,), 10)
    assert count_parameters(model) == 64 * 200 + 200 + 200 * 200 + 200 + 200 * 10 + 10


def test_scale_invariant_net_is_invariant_to_scaling_each_weight():
    model = build_model("si-mlp", (64,), 10, width=16, seed=0, dtype="float64")
    model.train()
    x = torch.randn(32, 64, dtype=torch.float64)
    out = model(x)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.7)
    # exact up to BatchNorm's eps (1e-5 added to the variance)
    assert torch.allclose(model(x), out, atol=1e-3)
    assert has_batchnorm(model) and not has_batchnorm(build_model("fc-relu", (64,), 10))
    assert all(p.requires_grad for p in model.parameters())  # the fixed head is a buffer


def test_scalar_uv_is_a_product():
    model = build_model("scalar-uv", (1,), 1, init=[2.0, -3.0], dtype="float64")
    assert torch.allclose(model(torch.tensor([[0.5]], dtype=torch.float64)),
                          torch.tensor([[-3.0]], dtype=torch.float64))


@pytest.mark.parametrize("kwargs,match", [
    ({"name": "vgg"}, "unknown model 'vgg'; allowed: fc-tanh"),
    ({"name": "fc-tanh", "width": 0}, "width=0"),
    ({"name": "cnn", "input_shape": (10,)}, "cannot be read as an image"),
])
def test_bad_inputs_name_the_value(kwargs, match):
    args = {"input_shape": (64,), "n_outputs": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        build_model(args.pop("name"), args.pop("input_shape"), args.pop("n_outputs"), **args)

"""The SPN's spatial propagation in plain PyTorch against a per-pixel loop written from the reference's contract."""

from __future__ import annotations

import pytest
import torch

from impasto.nets.spn_propagate import propagate

DIRECTIONS = [(True, False), (True, True), (False, False), (False, True)]  # left->right, right->left, down, up
NAMES = ["left-right", "right-left", "top-down", "down-top"]


def loop_propagate(x, g1, g2, g3, horizontal, reverse):  # noqa: ANN001, ANN201
    """The recurrence pixel by pixel, as the CUDA kernel computes it (gaterecurrent2dnoind_kernel.cu forward):
    per column/row in scan order, per pixel, gates read at the pixel itself, a neighbour outside the image giving
    gate 0 and value 0."""
    n, c, height, width = x.shape
    out = torch.zeros_like(x)

    def get(t, h, w):  # noqa: ANN001, ANN202 - get_data_sf
        return t[:, :, h, w] if 0 <= h < height and 0 <= w < width else torch.zeros(n, c, dtype=x.dtype)

    def gate(g, h, w, hn, wn):  # noqa: ANN001, ANN202 - get_gate_sf: 0 when the neighbour is outside
        return g[:, :, h, w] if 0 <= hn < height and 0 <= wn < width else torch.zeros(n, c, dtype=x.dtype)

    step = 1 if reverse else -1  # where the previous column/row lies
    if horizontal:
        cols = range(width - 1, -1, -1) if reverse else range(width)
        pixels = [(h, w) for w in cols for h in range(height)]
        neighbours = lambda h, w: [(h - 1, w + step), (h, w + step), (h + 1, w + step)]  # noqa: E731
    else:
        rows = range(height - 1, -1, -1) if reverse else range(height)
        pixels = [(h, w) for h in rows for w in range(width)]
        neighbours = lambda h, w: [(h + step, w - 1), (h + step, w), (h + step, w + 1)]  # noqa: E731
    for h, w in pixels:
        (h1, w1), (h2, w2), (h3, w3) = neighbours(h, w)
        a1, a2, a3 = gate(g1, h, w, h1, w1), gate(g2, h, w, h2, w2), gate(g3, h, w, h3, w3)
        out[:, :, h, w] = (
            (1 - a1 - a2 - a3) * x[:, :, h, w] + a1 * get(out, h1, w1) + a2 * get(out, h2, w2) + a3 * get(out, h3, w3)
        )
    return out


def _inputs(shape=(2, 3, 5, 7), dtype=torch.float64, seed=0):  # noqa: ANN001, ANN202
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=dtype)
    gates = [torch.rand(shape, generator=gen, dtype=dtype) * 0.8 - 0.3 for _ in range(3)]  # some negative, as SPN's
    return x, gates


@pytest.mark.parametrize(("horizontal", "reverse"), DIRECTIONS, ids=NAMES)
def test_matches_the_per_pixel_loop(horizontal: bool, reverse: bool) -> None:
    x, gates = _inputs()
    want = loop_propagate(x, *gates, horizontal, reverse)
    got = propagate(x, *gates, horizontal=horizontal, reverse=reverse)
    assert got.shape == x.shape
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    x32, g32 = x.float(), [g.float() for g in gates]  # float32 as the nets run: within ~1e-6
    torch.testing.assert_close(propagate(x32, *g32, horizontal, reverse), want.float(), rtol=0, atol=1e-5)


@pytest.mark.parametrize(("horizontal", "reverse"), DIRECTIONS, ids=NAMES)
def test_one_pixel_wide_and_square_shapes(horizontal: bool, reverse: bool) -> None:
    for shape in [(1, 2, 1, 6), (1, 2, 6, 1), (1, 1, 4, 4), (1, 1, 1, 1)]:
        x, gates = _inputs(shape, seed=1)
        torch.testing.assert_close(
            propagate(x, *gates, horizontal, reverse), loop_propagate(x, *gates, horizontal, reverse), rtol=0,
            atol=1e-12,
        )  # fmt: skip


def test_directions_differ_and_run_the_right_way() -> None:
    # an impulse in the middle spreads only downstream of the scan; upstream H is x (zero) exactly
    x = torch.zeros(1, 1, 5, 7, dtype=torch.float64)
    x[0, 0, 2, 3] = 1.0
    g = torch.full_like(x, 0.3)
    lr = propagate(x, g, g, g, horizontal=True, reverse=False)
    rl = propagate(x, g, g, g, horizontal=True, reverse=True)
    td = propagate(x, g, g, g, horizontal=False, reverse=False)
    du = propagate(x, g, g, g, horizontal=False, reverse=True)
    assert lr[..., :3].abs().max() == 0 and lr[..., 4:].abs().max() > 0.01
    assert rl[..., 4:].abs().max() == 0 and rl[..., :3].abs().max() > 0.01
    assert td[..., :2, :].abs().max() == 0 and td[..., 3:, :].abs().max() > 0.01
    assert du[..., 3:, :].abs().max() == 0 and du[..., :2, :].abs().max() > 0.01
    # the cone: left->right, one column on, rows 1..3 are reached (three neighbours), rows 0 and 4 not yet
    assert (lr[0, 0, [1, 2, 3], 4] > 0).all() and lr[0, 0, 0, 4] == 0 and lr[0, 0, 4, 4] == 0


@pytest.mark.parametrize(("horizontal", "reverse"), DIRECTIONS, ids=NAMES)
def test_borders(horizontal: bool, reverse: bool) -> None:
    x, gates = _inputs(seed=2)
    out = propagate(x, *gates, horizontal, reverse)
    first = (..., -1 if reverse else 0) if horizontal else (..., -1 if reverse else 0, slice(None))
    torch.testing.assert_close(out[first], x[first], rtol=0, atol=0)  # the first column/row: no neighbour, H = x
    # a constant stays constant whatever the gates: on the borders the x coefficient counts only the neighbours
    # that exist (a zero-padded neighbour with its gate kept would pull the edges towards 0)
    const = torch.full_like(x, 0.7)
    torch.testing.assert_close(propagate(const, *gates, horizontal, reverse), const, rtol=0, atol=1e-12)
    # gates whose neighbour lies outside are never read: g1 on the low edge of the cross axis, g3 on the high one
    g1, g2, g3 = (g.clone() for g in gates)
    if horizontal:
        g1[:, :, 0, :] = 123.0
        g3[:, :, -1, :] = -45.0
    else:
        g1[:, :, :, 0] = 123.0
        g3[:, :, :, -1] = -45.0
    torch.testing.assert_close(propagate(x, g1, g2, g3, horizontal, reverse), out, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("horizontal", "reverse"), DIRECTIONS, ids=NAMES)
def test_gradients(horizontal: bool, reverse: bool) -> None:
    x, gates = _inputs((1, 2, 3, 4), seed=3)
    inputs = tuple(t.clone().requires_grad_(True) for t in (x, *gates))
    assert torch.autograd.gradcheck(lambda *t: propagate(*t, horizontal, reverse), inputs, eps=1e-6, atol=1e-8)


def test_shapes_must_agree() -> None:
    x, (g1, g2, g3) = _inputs()
    with pytest.raises(ValueError, match="one shape"):
        propagate(x, g1[:, :, :4], g2, g3, True, False)


def test_spn_is_differentiable_end_to_end() -> None:
    # what `impasto train spn` needs: gradients reach the guidance network through the four propagations
    from impasto.nets.linear import SPN

    torch.manual_seed(0)
    spn = SPN(nf=4)
    x, rgb = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    out = spn(x, rgb)
    assert out.shape == (1, 3, 16, 16)
    out.square().mean().backward()
    for name in ("decoder.layer7.weight", "encoder.conv1.weight", "mask_conv.weight", "post.weight"):
        grad = dict(spn.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name

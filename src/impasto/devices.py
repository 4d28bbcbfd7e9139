"""Device and dtype choice, the bf16/channels_last policy, and seeds turned into generators."""

from __future__ import annotations

import functools
import logging

import torch

from .errors import ConfigError

log = logging.getLogger(__name__)


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """Turn ``auto``/``cpu``/``cuda``/``cuda:N``/``N``/``c`` into a torch.device, checking it exists.

    A bare integer means that CUDA device (neural-style-pt's ``-gpu`` numbering); ``c`` means the CPU.
    """
    if isinstance(name, torch.device):
        name = str(name)
    text = (name or "auto").strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text in ("cpu", "c"):
        return torch.device("cpu")
    if text.isdigit():
        text = f"cuda:{text}"
    if text == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError("device 'mps' was asked for but this machine has no MPS device")
        return torch.device("mps")
    if text.startswith("cuda"):
        index_text = text[5:] if text.startswith("cuda:") else ""
        if text not in ("cuda",) and not index_text.isdigit():
            raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or a GPU number")
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} was asked for but no CUDA GPU is available; use --device cpu")
        index = int(index_text) if index_text else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {name!r} does not exist; this machine has {torch.cuda.device_count()} CUDA GPU(s)"
            )
        return torch.device("cuda", index)
    raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or a GPU number")


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """True on CPUs with AVX-512 BF16 or AMX, where bf16 matmuls/convs are faster than fp32."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def fast_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype worth using on ``device`` (None: stay in fp32)."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16
    return None


def autocast(device: torch.device, enabled: bool = True) -> torch.autocast:
    """An autocast context in the fast dtype for ``device`` (a no-op one when disabled or not worth it)."""
    dtype = fast_dtype(device) if enabled else None
    if dtype is None:
        return torch.autocast(device_type=device.type if device.type in ("cpu", "cuda") else "cpu", enabled=False)
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator on ``device`` seeded with ``seed`` (a fresh random seed when None)."""
    gen = torch.Generator(device=device)
    if seed is None or seed < 0:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return gen


def prepare_for_inference(
    module: torch.nn.Module, device: torch.device | str = "cpu", fast: bool = True
) -> torch.nn.Module:
    """``module`` frozen for inference on ``device``: eval mode, no grads; with ``fast``, channels_last too.

    channels_last (NHWC in memory) is what oneDNN on CPUs and cuDNN on GPUs run convolutions fastest in; feed such a
    module ``x.contiguous(memory_format=torch.channels_last)`` and, where ``fast_dtype`` says it pays, run it under
    ``autocast``. Returns the same module, changed in place.
    """
    module = module.to(device).eval().requires_grad_(False)
    if fast and torch.device(device).type in ("cpu", "cuda"):
        # Module.to takes memory_format at runtime (it forwards to Tensor.to); torch's overload stubs omit it
        module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return module


@functools.lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep large freed blocks for reuse instead of handing them back to the OS.

    PyTorch's CPU allocator gets every tensor from malloc, and glibc serves blocks above a size threshold with a
    fresh ``mmap`` that it unmaps on free: every forward pass at 1024x1024 then page-faults hundreds of MB in again,
    which costs more than the arithmetic of a small network (a 128 MB clone: 66 ms -> 24 ms with this on the 2-core
    dev box). Process-wide and not undoable, so callers opt in (e.g. a CLI command about to render images); the cost is
    that the process keeps its peak working set. Returns True when applied (Linux with glibc), else False.
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from <malloc.h>
    ok = bool(mallopt(m_mmap_threshold, 1 << 30)) and bool(mallopt(m_trim_threshold, 1 << 30))
    log.debug("malloc tuned to keep freed memory: %s", ok)
    return ok

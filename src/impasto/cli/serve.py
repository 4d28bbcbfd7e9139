"""``impasto serve``: the web studio on http://127.0.0.1:7860 (FastAPI + uvicorn; needs ``impasto[web]``).

Binding to any other host needs an access token: ``--token`` or one generated and printed with the address, as
Jupyter does. Ctrl-C stops cleanly: running jobs are cancelled (paint keeps its checkpoint) and marked
``interrupted``; the next ``impasto serve`` on the same ``--data-dir`` resumes them. A killed server (kill -9)
leaves them ``running``, which the next start resumes too.
"""

from __future__ import annotations

import argparse
import ipaddress
import secrets
import sys
from pathlib import Path

from ..errors import ConfigError, ImpastoError

HINT = "the web studio needs FastAPI and uvicorn: pip install 'impasto[web]'"


class MissingExtra(ImpastoError):
    pass


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="where jobs, uploads and results are kept (default: ~/.local/share/impasto/studio)",
                   )  # fmt: skip
    p.add_argument("--open", action="store_true", help="open the page in a browser")
    p.add_argument("--token", default=None, help="access token (generated when binding off loopback)")
    p.add_argument("--workers", type=int, default=1, help="worker threads: one per device (default: 1)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    # for tests and operators: a paint network NAME mapped to a file (a web client names a network, never a file)
    p.add_argument("--paint-model-file", action="append", default=[], metavar="NAME=FILE", help=argparse.SUPPRESS)
    p.add_argument("--checkpoint-every", type=int, default=10, help=argparse.SUPPRESS)


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _model_files(items: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for item in items:
        name, sep, file = item.partition("=")
        if not sep or not name or not file:
            raise ConfigError(f"--paint-model-file takes NAME=FILE, got {item!r}")
        if not Path(file).is_file():
            raise ConfigError(f"--paint-model-file {name}: {file} is not a file")
        out[name] = Path(file)
    return out


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..web import default_data_dir
        from ..web.server import create_app
    except ImportError:
        raise MissingExtra(HINT) from None
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be between 1 and 65535, got {args.port}")
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    token = args.token
    if token is not None and not token.strip():
        raise ConfigError("--token must not be empty")
    if token is None and not is_loopback(args.host):
        token = secrets.token_urlsafe(24)
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    app = create_app(
        data_dir, token=token, workers=args.workers, paint_model_files=_model_files(args.paint_model_file),
        checkpoint_every=args.checkpoint_every, device=args.device,
    )  # fmt: skip
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    shown = f"[{shown}]" if ":" in shown else shown
    url = f"http://{shown}:{args.port}/" + (f"?token={token}" if token else "")
    print(f"impasto studio: {url}  (data: {data_dir}; Ctrl-C stops)", file=sys.stderr, flush=True)
    config = uvicorn.Config(
        app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=3, access_log=False
    )
    server = uvicorn.Server(config)
    if args.open:
        import threading
        import webbrowser

        threading.Timer(1.0, lambda: webbrowser.open(url)).start()
    try:
        server.run()
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the Ctrl-C it handled: the studio has already stopped cleanly
    finally:
        app.state.studio.close()  # normally done by the lifespan already; closing twice is a no-op
    print("impasto studio: stopped", file=sys.stderr, flush=True)
    return 0

"""A real OpenAI-compatible chat server on this machine: ``transformers serve`` over a local model.

The zero-shot chat system (:class:`labkit.summarize.endpoint.ChatEndpoint`) speaks the OpenAI
chat-completions protocol to any server. To try it without a network or an API key, serve a
local causal LM with Hugging Face's own server (``pip install 'transformers[serving]'``,
the ``dev`` extra)::

    python -m labkit.summarize.serve                     # labkit's tiny LM (trained if needed)
    python -m labkit.summarize.serve --model FOLDER --port 8000

It prints the two environment variables that point the study at it, e.g.::

    LABKIT_CHAT_BASE_URL=http://127.0.0.1:8000/v1 LABKIT_CHAT_MODEL=<folder> \\
        labkit run meeting_summarization

``transformers serve`` formats requests with the tokenizer's chat template; a base LM (like the
tiny LM) has none, so :func:`servable_folder` writes a copy of the model folder whose template
passes the user message through unchanged (the prompt the local HF generator would use). The
server runs on CPU (``--device cpu``) and on 127.0.0.1 only. The test suite starts the same
command (:func:`start`) against a tiny model in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from labkit.errors import ModelError, ProviderError
from labkit.lm import TinyLMConfig, train_tiny_lm
from labkit.models import resolve
from labkit.paths import cache_dir
from labkit.summarize.profiles import PROFILES
from labkit.timing import Stopwatch

#: the user message as the prompt, one message per line; no role markers (a base LM has none)
PASS_THROUGH_TEMPLATE = (
    "{% for message in messages %}{{ message['content'] }}{% if not loop.last %}\n{% endif %}{% endfor %}"
)


def available() -> tuple[bool, str]:
    """``(True, "")`` when ``transformers serve`` can run here, else ``(False, why)``."""
    try:
        from transformers.cli.serve import serve_dependencies_available
    except ImportError as exc:  # pragma: no cover - transformers without its CLI
        return False, f"transformers has no serve CLI ({exc})"
    if not serve_dependencies_available:
        return False, "transformers serve needs its extra: pip install 'transformers[serving]'"
    return True, ""


def servable_folder(model: str | os.PathLike, out: str | os.PathLike) -> Path:
    """A copy of the causal LM folder ``model`` in ``out`` whose tokenizer has a chat template
    (the model's own when it has one, else :data:`PASS_THROUGH_TEMPLATE`). Weights are linked,
    not copied, where the file system allows."""
    from transformers import AutoTokenizer

    source = Path(resolve(str(model)).path)
    if not (source / "config.json").is_file():
        raise ModelError(f"{source}: not a Hugging Face model folder (no config.json)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.is_file() and (path.suffix in (".safetensors", ".json") or path.name == "config.json"):
            target = out / path.name
            if target.exists():
                target.unlink()
            try:
                os.link(path, target)
            except OSError:
                shutil.copy2(path, target)
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = PASS_THROUGH_TEMPLATE
    tokenizer.save_pretrained(str(out))
    return out


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def command(folder: str | os.PathLike, port: int, host: str = "127.0.0.1") -> list[str]:
    """The ``transformers serve`` command line for ``folder`` (CPU, one forced model)."""
    return [
        sys.executable,
        "-m",
        "transformers.cli.transformers",
        "serve",
        "--host",
        host,
        "--port",
        str(port),
        "--device",
        "cpu",
        "--force-model",
        str(folder),
        "--log-level",
        "warning",
    ]


def wait_until_ready(
    base_url: str, process: subprocess.Popen | None = None, timeout_s: float = 60.0, log: Path | None = None
) -> None:
    """Poll the server's ``GET /health`` until it answers; raise :class:`ProviderError`
    naming the URL (and the end of the server's log) when it exits or does not answer within
    ``timeout_s``."""
    import threading
    import urllib.error
    import urllib.request

    def tail() -> str:
        return log.read_text(errors="replace")[-2000:] if log is not None and log.is_file() else ""

    clock = Stopwatch(None).start()
    while True:
        if process is not None and process.poll() is not None:
            raise ProviderError(
                f"transformers serve exited with code {process.returncode} before {base_url} answered: {tail()}"
            )
        try:
            health = base_url.rstrip("/").removesuffix("/v1") + "/health"
            with urllib.request.urlopen(health, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        clock.lap()
        if clock.seconds > timeout_s:
            raise ProviderError(f"transformers serve did not answer at {base_url} within {timeout_s:.0f} s: {tail()}")
        threading.Event().wait(0.25)


def start(
    folder: str | os.PathLike,
    port: int | None = None,
    host: str = "127.0.0.1",
    timeout_s: float = 60.0,
    log: str | os.PathLike | None = None,
) -> tuple[subprocess.Popen, str]:
    """Start ``transformers serve`` on ``folder``; returns ``(process, base_url)`` once it
    answers. Its output goes to ``log`` (default ``<folder>/serve.log``). Stop it with
    ``process.terminate()``."""
    ok, why = available()
    if not ok:
        raise ProviderError(why)
    port = port or free_port(host)
    log = Path(log) if log is not None else Path(folder) / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
    with open(log, "w") as out:  # a file, not a pipe: a full pipe would block the server
        process = subprocess.Popen(
            command(folder, port, host), stdout=out, stderr=subprocess.STDOUT, text=True, env=env
        )
    base_url = f"http://{host}:{port}/v1"
    try:
        wait_until_ready(base_url, process, timeout_s, log)
    except BaseException:
        process.terminate()
        process.wait(10)
        raise
    return process, base_url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Serve a local causal LM with transformers serve for the summarization study's chat endpoint."
    )
    parser.add_argument(
        "--model",
        help="model name or folder (default: labkit's tiny LM of "
        "the default profile, trained into the model cache if needed)",
    )
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    ok, why = available()
    if not ok:
        raise SystemExit(why)
    model = args.model
    if not model:
        model = str(train_tiny_lm(TinyLMConfig(**PROFILES["default"]["tiny_lm"]), progress=True).path)
    folder = servable_folder(model, cache_dir("summaries", "_served") / Path(model).name)
    print(
        f"serving {folder} on http://{args.host}:{args.port}/v1\n"
        f"point the study at it:\n  LABKIT_CHAT_BASE_URL=http://{args.host}:{args.port}/v1 "
        f"LABKIT_CHAT_MODEL={folder} labkit run meeting_summarization",
        flush=True,
    )
    os.execv(sys.executable, command(folder, args.port, args.host))


if __name__ == "__main__":
    main()

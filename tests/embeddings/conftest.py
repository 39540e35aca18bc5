"""Shared fixtures for the embedding tests: an isolated cache and no API keys by default, a real
HTTP server on loopback that speaks OpenAI's and Google's embedding wire formats (a test
fixture, never in the product), and a loopback port where nothing listens."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

API_ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_BASE_URL")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_CACHE_DIR", str(tmp_path / "cache"))
    for key in API_ENV:
        monkeypatch.delenv(key, raising=False)


class FakeAPI:
    """Scripted server: ``script`` holds one status per request (the last repeats)."""

    @staticmethod
    def vector(text: str, dims: int) -> list[float]:
        rng = np.random.default_rng(abs(hash(text)) % 2**32)
        return rng.standard_normal(dims).round(6).tolist()

    def __init__(self):
        self.script, self.requests = [200], []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api.requests.append((self.path, body, {k.lower(): v for k, v in self.headers.items()}))
                status = api.script[min(len(api.requests) - 1, len(api.script) - 1)]
                if status != 200:
                    payload = {"error": {"message": f"scripted {status}", "code": status, "status": "UNAVAILABLE"}}
                elif self.path.endswith("/embeddings"):  # OpenAI
                    dims = body.get("dimensions", 8)
                    payload = {
                        "object": "list",
                        "model": body["model"],
                        "data": [
                            {"object": "embedding", "index": i, "embedding": api.vector(t, dims)}
                            for i, t in reversed(list(enumerate(body["input"])))
                        ],
                        "usage": {"prompt_tokens": 1, "total_tokens": 1},
                    }
                else:  # Google: models/<m>:batchEmbedContents
                    reqs = body.get("requests", [body])
                    payload = {
                        "embeddings": [
                            {"values": api.vector(r["content"]["parts"][0]["text"], r.get("outputDimensionality") or 8)}
                            for r in reqs
                        ]
                    }
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def api():
    server = FakeAPI()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound then released, so the OS just handed it out)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

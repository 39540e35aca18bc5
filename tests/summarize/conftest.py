"""Fixtures for the summarization tests: an isolated cache, items, a loopback chat server.

The chat server is a real HTTP server on 127.0.0.1 speaking the OpenAI chat-completions
protocol (fixture only: the product never fakes a model). Its behaviour is scripted per test.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from labkit.summarize.data import Item


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def items():
    return [
        Item(
            f"m{i}",
            f"Alice: we discussed topic {i} at length today.\nBob: the budget for topic {i} is fine.",
            f"They discussed topic {i}.",
            source=f"meeting-{i}",
        )
        for i in range(3)
    ]


class ChatServer:
    """Scripted OpenAI-compatible server. ``script`` is a list of actions, one per request
    (the last repeats): "ok", "429", "500", "401", "slow" (sleeps ``slow_s``), or "empty"."""

    def __init__(self):
        self.script = ["ok"]
        self.slow_s = 2.0
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, payload):
                body = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                request = json.loads(self.rfile.read(length) or b"{}")
                with server.lock:
                    n = len(server.requests)
                    server.requests.append(
                        {"path": self.path, "body": request, "auth": self.headers.get("Authorization")}
                    )
                    action = server.script[min(n, len(server.script) - 1)]
                if not self.path.endswith("/chat/completions"):
                    return self._send(404, {"error": {"message": "not found"}})
                if action == "500":
                    return self._send(500, {"error": {"message": "server exploded"}})
                if action == "429":
                    return self._send(429, {"error": {"message": "rate limit reached"}})
                if action == "401":
                    return self._send(401, {"error": {"message": "invalid api key"}})
                if action == "slow":
                    time.sleep(server.slow_s)
                prompt = request["messages"][-1]["content"]
                words = prompt.split()
                body = prompt.split("\n\n")[1] if "\n\n" in prompt else prompt
                content = "Summary of " + " ".join(body.split()[:8]) + "."
                if action == "empty":
                    return self._send(
                        200,
                        {
                            "id": "x",
                            "object": "chat.completion",
                            "created": 0,
                            "model": request.get("model"),
                            "choices": [],
                        },
                    )
                self._send(
                    200,
                    {
                        "id": f"cmpl-{n}",
                        "object": "chat.completion",
                        "created": 0,
                        "model": request.get("model"),
                        "choices": [
                            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
                        ],
                        "usage": {
                            "prompt_tokens": len(words),
                            "completion_tokens": 10,
                            "total_tokens": len(words) + 10,
                        },
                    },
                )

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def chat_server():
    server = ChatServer()
    yield server
    server.close()

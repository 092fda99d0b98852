"""ThreadingHTTPServer around `Api`: one daemon thread serves, a thread per request; nothing here knows routes."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cronframework.errors import CronframeworkError

from .http import Request, Response, error
from .routes import Api

log = logging.getLogger("cronframework.api")

MAX_BODY = 64 * 1024


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self, head: bool = False) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(error(413, "body too large"))
            return
        body = self.rfile.read(length) if length else b""
        request = Request(self.command, self.path, dict(self.headers.items()), body)
        try:
            response = self.server.api.handle(request)
        except Exception:  # a bug in a handler answers 500 and is logged; the server keeps serving
            log.exception("API handler failed", extra={"method": self.command, "path": request.path})
            response = error(500, "internal error")
        self._send(response, head)

    def _send(self, response: Response, head: bool = False) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        # the access log goes through logging at debug level; the Authorization header is never part of it
        log.debug("api request", extra={"client": self.client_address[0], "request": self.requestline})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], api: Api) -> None:
        self.api = api
        super().__init__(address, _Handler)


class ApiServer:
    """Bind at once (so a port clash is reported by `start`), serve on a daemon thread, `close` to stop."""

    def __init__(self, api: Api, host: str = "127.0.0.1", port: int = 0) -> None:
        try:
            self._server = _Server((host, port), api)
        except OSError as exc:
            raise CronframeworkError(f"cannot listen on {host}:{port} for the API: {exc.strerror or exc}") from None
        self._thread = threading.Thread(target=self._server.serve_forever, name="api", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}"

    def start(self) -> ApiServer:
        self._thread.start()
        log.info("api listening", extra={"api_url": self.url})
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

"""uvicorn serving the API on a daemon thread beside the scheduler's threads; nothing here knows routes.

The socket is bound in the constructor, so a port clash is reported by the caller before any thread starts; TLS
(certificate, key, optional client CA) is uvicorn's, loaded at start so a bad file fails `start`.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import uvicorn

from cronframework.errors import CronframeworkError

from .access import Api
from .app import create_app
from .tls import ServerTls

log = logging.getLogger("cronframework.api")

KEEP_ALIVE = 5  # seconds an idle connection is kept
GRACE = 2  # seconds requests in flight may finish at close
STARTUP = 10.0


class ApiServer:
    """Bind at once (so a port clash is reported by `start`), serve on a daemon thread, `close` to stop."""

    def __init__(self, api: Api, host: str = "127.0.0.1", port: int = 0, tls: ServerTls | None = None) -> None:
        self.tls = tls
        self._socket = _bind(host, port)
        config = uvicorn.Config(
            create_app(api),
            log_config=None,
            access_log=False,  # the request counter is in /metrics; a token is never in a log line
            timeout_keep_alive=KEEP_ALIVE,
            timeout_graceful_shutdown=GRACE,
            lifespan="off",
            server_header=False,
            **(tls.uvicorn() if tls else {}),
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="api", daemon=True)
        self._failed: BaseException | None = None

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    @property
    def host(self) -> str:
        return str(self._socket.getsockname()[0])

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def start(self) -> ApiServer:
        self._thread.start()
        deadline = time.monotonic() + STARTUP
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._server.started:
            self._socket.close()
            raise CronframeworkError(f"the API did not start: {self._failed or 'timed out'}")
        log.info("api listening", extra={"api_url": self.url, "tls": self.tls is not None})
        return self

    def _serve(self) -> None:
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # uvicorn exits through SystemExit on a bad TLS file: `start` reports it
            self._failed = exc

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)
        self._socket.close()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise CronframeworkError(f"cannot listen on {host}:{port} for the API: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock

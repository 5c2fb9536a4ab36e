"""A real HTTP server on 127.0.0.1 serving fixture files, for the download tests.

Routes, for a file registered as `name`:

    /files/name         the file; honours `Range: bytes=N-` (206), like raw.githubusercontent.com
    /redirect/name      302 to /files/name (as the Hub's resolve/ URLs redirect to a CDN)
    /drop/name          the first request sends half the file and closes the connection
                        (Content-Length promises all of it); later requests behave as /files/
    /drop-norange/name  the same, but the server ignores Range: a retry gets the whole file
    /stream/name        the file without a Content-Length (close-delimited), Range ignored
    /busy/name          503 on the first request, then as /files/
    anything else       404

Every request is logged as (method, path, Range header or None, status), before the reply is
sent (so a client that has its answer always finds it in the log).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FixtureServer:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.log: list[tuple[str, str, str | None, int]] = []
        self._served: set[tuple[str, str]] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep pytest's output clean
                pass

            def do_GET(self) -> None:
                server._handle(self)

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def url(self, route: str, name: str) -> str:
        return f"{self.base}/{route}/{name}"

    def requests_for(self, name: str) -> list[tuple[str, str, str | None, int]]:
        return [entry for entry in self.log if entry[1].endswith("/" + name)]

    def __enter__(self) -> FixtureServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        _, route, name = [*request.path.split("/", 2), "", ""][:3]
        rng = request.headers.get("Range")
        data = self.files.get(name)
        first = (route, name) not in self._served
        self._served.add((route, name))
        if data is None or route not in ("files", "redirect", "drop", "drop-norange", "stream",
                                         "busy"):
            return self._reply(request, 404, b"not found", rng)
        if route == "redirect":
            self.log.append(("GET", request.path, rng, 302))
            request.send_response(302)
            request.send_header("Location", f"/files/{name}")
            request.send_header("Content-Length", "0")
            request.end_headers()
            return None
        if route == "busy" and first:
            return self._reply(request, 503, b"busy", rng)
        if route in ("drop", "drop-norange") and first:
            self.log.append(("GET", request.path, rng, 200))
            request.send_response(200)
            request.send_header("Content-Length", str(len(data)))
            request.end_headers()
            request.wfile.write(data[: len(data) // 2])
            request.wfile.flush()
            request.close_connection = True
            return None
        if route == "stream":
            self.log.append(("GET", request.path, rng, 200))
            request.send_response(200)
            request.end_headers()
            request.wfile.write(data)
            return None
        start = int(rng.removeprefix("bytes=").rstrip("-")) if rng and route != "drop-norange" \
            else 0
        if start >= len(data) and start:
            return self._reply(request, 416, b"", rng)
        status = 206 if start else 200
        self.log.append(("GET", request.path, rng, status))
        request.send_response(status)
        if start:
            request.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        request.send_header("Content-Length", str(len(data) - start))
        request.end_headers()
        request.wfile.write(data[start:])
        return None

    def _reply(self, request: BaseHTTPRequestHandler, status: int, body: bytes,
               rng: str | None) -> None:
        self.log.append(("GET", request.path, rng, status))
        request.send_response(status)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

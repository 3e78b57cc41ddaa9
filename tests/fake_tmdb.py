"""A fake TMDB on 127.0.0.1 for the poster tests: /3/movie/{id}, /3/search/movie and images.

Movie ids choose the answer: 100 has a poster, 404 is unknown to TMDB, 408 answers too slowly,
500 fails, 666 answers malformed JSON, 777 points at a non-image; the key "bad-key" gets 401.
A search for "Toy Story" finds movie 100.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from PIL import Image

SLOW_S = 3.0


def poster_bytes(colour: str = "#1f6feb") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (60, 90), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass

    def send(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if query.get("api_key") == ["bad-key"]:
            return self.send(401, b'{"status_code": 7, "status_message": "Invalid API key"}')
        if url.path.startswith("/img/"):
            if url.path.endswith("broken.jpg"):
                return self.send(200, b"not an image", "image/jpeg")
            return self.send(200, poster_bytes(), "image/jpeg")
        if url.path == "/3/search/movie":
            found = query.get("query") == ["Toy Story"]
            results = [{"id": 100, "poster_path": "/toy.jpg"}] if found else []
            return self.send(200, json.dumps({"results": results}).encode())
        movie = url.path.removeprefix("/3/movie/")
        if movie == "408":
            time.sleep(SLOW_S)
        if movie in ("404", "408"):
            return self.send(404, b'{"status_code": 34}')
        if movie == "500":
            return self.send(500, b"oops")
        if movie == "666":
            return self.send(200, b'{"poster_path": "/x.jpg"')
        if movie == "777":
            return self.send(200, b'{"poster_path": "/broken.jpg"}')
        return self.send(
            200, json.dumps({"id": int(movie), "poster_path": f"/{movie}.jpg"}).encode()
        )


@contextmanager
def fake_tmdb() -> Iterator[str]:
    """Serve the fake; yields its base URL (API at /3, images at /img)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()

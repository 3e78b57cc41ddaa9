"""A loopback server of the Hugging Face Hub's write API, for pushing without the internet.

It answers what ``HfApi.create_repo``, ``create_branch`` and ``upload_folder`` send (repo
creation, branches, the model card's metadata check, preupload, the file tree, the NDJSON
commit) and keeps each repo's
revision as a plain folder, ``<root>/<owner>/<name>/<revision>/``, so a test reads exactly
what a push published. Every write needs ``Authorization: Bearer <token>``; a wrong or missing
token is a 401, as on the Hub. Files are accepted as regular (inline base64) uploads only: the
bundles pushed in tests are small, and no Xet/LFS storage is needed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
import yaml
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse


def hub_app(root: Path, token: str) -> FastAPI:
    app = FastAPI()

    def authorise(request: Request) -> None:
        if request.headers.get("authorization") != f"Bearer {token}":
            raise HTTPException(401, "Invalid credentials in Authorization header")

    def folder(owner: str, name: str, revision: str) -> Path:
        path = root / owner / name / revision
        if not (root / owner / name).is_dir():
            raise HTTPException(404, f"Repository {owner}/{name} not found")
        return path

    @app.post("/api/repos/create")
    async def create_repo(request: Request) -> dict:
        authorise(request)
        body = await request.json()
        repo = root / body["organization"] / body["name"]
        (repo / "main").mkdir(parents=True, exist_ok=True)
        (repo / "visibility").write_text(body.get("visibility") or "public")
        return {"url": f"{request.base_url}{body['organization']}/{body['name']}"}

    @app.post("/api/models/{owner}/{name}/branch/{branch}")
    async def create_branch(owner: str, name: str, branch: str, request: Request) -> dict:
        authorise(request)
        target = folder(owner, name, branch)
        if not target.exists():
            shutil.copytree(folder(owner, name, "main"), target)
        return {}

    @app.post("/api/validate-yaml")
    async def validate_yaml(request: Request) -> JSONResponse:
        """The card's front matter must be a YAML mapping (the Hub checks far more)."""
        content = (await request.json())["content"]
        try:
            front = yaml.safe_load(content.split("---\n")[1]) if content.startswith("---\n") else {}
            if not isinstance(front, dict):
                raise ValueError("the front matter is not a mapping")
        except (yaml.YAMLError, ValueError, IndexError) as error:
            return JSONResponse({"errors": [{"message": str(error)}]}, status_code=400)
        return JSONResponse({"errors": [], "warnings": []})

    @app.post("/api/models/{owner}/{name}/preupload/{revision}")
    async def preupload(owner: str, name: str, revision: str, request: Request) -> dict:
        authorise(request)
        folder(owner, name, revision)
        files = (await request.json())["files"]
        return {
            "files": [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files
            ]
        }

    @app.get("/api/models/{owner}/{name}/tree/{revision}")
    async def tree(owner: str, name: str, revision: str) -> list[dict]:
        base = folder(owner, name, revision)
        files = sorted(p for p in base.rglob("*") if p.is_file()) if base.exists() else []
        return [
            {
                "type": "file",
                "path": p.relative_to(base).as_posix(),
                "size": p.stat().st_size,
                "oid": hashlib.sha1(p.read_bytes()).hexdigest(),
            }
            for p in files
        ]

    @app.post("/api/models/{owner}/{name}/commit/{revision}")
    async def commit(owner: str, name: str, revision: str, request: Request) -> dict:
        authorise(request)
        base = folder(owner, name, revision)
        if not base.exists():
            raise HTTPException(404, f"Revision {revision} not found")
        lines = [json.loads(line) for line in (await request.body()).splitlines() if line]
        for line in lines:
            path = base / line["value"].get("path", "")
            if line["key"] == "file":
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(base64.b64decode(line["value"]["content"]))
            elif line["key"] == "deletedFile":
                path.unlink(missing_ok=True)
            elif line["key"] != "header":
                raise HTTPException(400, f"this test server does not support {line['key']}")
        oid = hashlib.sha1(json.dumps(lines, sort_keys=True).encode()).hexdigest()
        return {"commitUrl": f"{request.base_url}{owner}/{name}/commit/{oid}", "commitOid": oid}

    return app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_hub(root: Path, token: str) -> Iterator[str]:
    """Serve ``hub_app`` on a free loopback port in a thread; yields its URL (HF_ENDPOINT)."""
    port = _free_port()
    config = uvicorn.Config(hub_app(root, token), host="127.0.0.1", port=port, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test Hub server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)

"""A loopback server that speaks the Hugging Face Hub's HTTP API, for tests and the offline demo.

The real clients (huggingface_hub, transformers, datasets) run unchanged against it with
`HF_ENDPOINT=http://127.0.0.1:PORT` and `HF_HUB_DISABLE_XET=1` (../shared/HUB.md lists the endpoints).
Every file is stored as a "regular" git blob, so uploads need neither LFS nor Xet. Repositories, branches,
pull requests (`refs/pr/N`) and commits live in memory for the life of the server.

    python -m loopy_hf.hub_server --port 8080     # then: export HF_ENDPOINT=http://127.0.0.1:8080
"""

import argparse
import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")


def git_blob_sha(data: bytes) -> str:
    """The id git (and the Hub, for regular files) gives a file's content."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    sha: str
    files: dict[str, str]  # path -> blob sha
    parent: str | None
    message: str
    date: str


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # branch or refs/pr/N -> commit sha
    pull_requests: int = 0

    def resolve(self, revision: str) -> Commit | None:
        sha = self.refs.get(revision) or (revision if COMMIT_SHA.match(revision) else None)
        return self.commits.get(sha) if sha else None


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


class HubState:
    """Repositories and blobs, shared by the request threads under one lock."""

    def __init__(self):
        self.repos: dict[tuple[str, str], Repo] = {}
        self.blobs: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.fail_next_commits = 0  # tests set this to make the next commits fail with a 500

    def repo(self, repo_type: str, repo_id: str, authorized: bool) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not authorized):
            raise HubError(404, f"Repository Not Found for {repo_type} '{repo_id}'.", "RepoNotFound")
        return repo

    def commit(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    def add_commit(self, repo: Repo, ref: str, files: dict[str, str], message: str) -> Commit:
        parent = repo.refs.get(ref)
        date = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        digest = hashlib.sha1(json.dumps([parent, message, date, sorted(files.items()), ref]).encode()).hexdigest()
        commit = Commit(digest, files, parent, message, date)
        repo.commits[digest] = commit
        repo.refs[ref] = digest
        return commit

    def create_repo(self, repo_type: str, repo_id: str, private: bool) -> bool:
        if (repo_type, repo_id) in self.repos:
            return False
        repo = Repo(repo_type, repo_id, private)
        attributes = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
        self.blobs[git_blob_sha(attributes)] = attributes
        self.add_commit(repo, "main", {".gitattributes": git_blob_sha(attributes)}, "initial commit")
        self.repos[(repo_type, repo_id)] = repo
        return True


def card_data(state: HubState, commit: Commit) -> dict | None:
    """The YAML header of the commit's README.md, as the Hub reports it in `cardData`."""
    blob = commit.files.get("README.md")
    text = state.blobs[blob].decode() if blob else ""
    if not text.startswith("---"):
        return None
    header = text.split("---", 2)[1]
    return yaml.safe_load(header) or None


class HubRequestHandler(BaseHTTPRequestHandler):
    server_version = "loopy-hub/1.0"
    state: HubState  # set on the subclass made by `start_hub_server`

    def log_message(self, format, *args):  # noqa: A002 - quiet by default
        pass

    # --- plumbing -----------------------------------------------------------------------------------------------

    def _segments(self) -> tuple[list[str], dict]:
        parts = urlsplit(self.path)
        return [unquote(s) for s in parts.path.split("/") if s], parse_qs(parts.query)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while (size := int(self.rfile.readline().strip(), 16)) > 0:
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _authorized(self) -> bool:
        return self.headers.get("Authorization", "").startswith("Bearer ")

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, payload, status: int = 200, headers: dict | None = None):
        self._send(status, json.dumps(payload).encode(), headers)

    def _handle(self, method: str):
        try:
            segments, query = self._segments()
            body = self._body() if method in ("POST", "PUT") else b""
            with self.state.lock:
                self._route(method, segments, query, body)
        except HubError as error:
            headers = {**error.headers, "X-Error-Message": error.message}
            if error.code:
                headers["X-Error-Code"] = error.code
            self._json({"error": error.message}, error.status, headers)

    def do_GET(self):  # noqa: N802
        self._handle("GET")

    def do_HEAD(self):  # noqa: N802
        self._handle("HEAD")

    def do_POST(self):  # noqa: N802
        self._handle("POST")

    # --- routes -------------------------------------------------------------------------------------------------

    def _route(self, method: str, segments: list[str], query: dict, body: bytes):
        if segments[:1] == ["api"]:
            return self._api(method, segments[1:], query, body)
        repo_type = "model"
        if segments[:1] in (["datasets"], ["spaces"]):
            repo_type, segments = segments[0][:-1], segments[1:]
        if len(segments) >= 5 and segments[2] == "resolve" and method in ("GET", "HEAD"):
            repo = self.state.repo(repo_type, "/".join(segments[:2]), self._authorized())
            return self._resolve(repo, segments[3], "/".join(segments[4:]))
        raise HubError(404, f"no route for {method} {self.path}")

    def _api(self, method: str, segments: list[str], query: dict, body: bytes):
        if segments == ["repos", "create"] and method == "POST":
            return self._create_repo(json.loads(body or b"{}"))
        if segments == ["validate-yaml"]:
            return self._json({"errors": [], "warnings": []})
        if segments == ["whoami-v2"]:
            if not self._authorized():
                raise HubError(401, "Invalid credentials in Authorization header")
            return self._json({"type": "user", "name": "offline-user", "orgs": [],
                               "auth": {"type": "access_token", "accessToken": {"role": "write"}}})
        if segments == ["agent-harnesses"]:
            return self._json([])
        if len(segments) < 3 or segments[0] not in ("models", "datasets", "spaces"):
            raise HubError(404, f"no route for {method} /api/{'/'.join(segments)}")
        repo = self.state.repo(segments[0][:-1], "/".join(segments[1:3]), self._authorized())
        action, rest = (segments[3], segments[4:]) if len(segments) > 3 else ("info", [])
        if action in ("info", "revision") and method in ("GET", "HEAD"):
            return self._repo_info(repo, rest[0] if rest else "main")
        if action == "refs":
            return self._json({"branches": [{"name": r, "ref": f"refs/heads/{r}", "targetCommit": s}
                                            for r, s in repo.refs.items() if not r.startswith("refs/")],
                               "tags": [], "converts": []})
        if action == "tree":
            return self._tree(repo, rest[0] if rest else "main", "/".join(rest[1:]))
        if action == "paths-info":
            paths = parse_qs(body.decode()).get("paths", []) if body else []
            return self._paths_info(repo, rest[0], paths)
        if method != "POST":
            raise HubError(405, f"{method} not allowed on /api/{'/'.join(segments)}")
        if not self._authorized():
            raise HubError(401, "Write access requires a token (Authorization: Bearer ...)")
        if action == "preupload":
            return self._preupload(repo, rest[0], json.loads(body))
        if action == "commit":
            return self._commit(repo, rest[0], body, query.get("create_pr", ["0"])[0] in ("1", "true"))
        if action == "branch":
            return self._create_branch(repo, "/".join(rest), json.loads(body or b"{}"))
        raise HubError(404, f"no route for {method} /api/{'/'.join(segments)}")

    def _create_repo(self, request: dict):
        if not self._authorized():
            raise HubError(401, "Creating a repository requires a token")
        repo_type = request.get("type") or "model"
        repo_id = f"{request['organization']}/{request['name']}" if request.get("organization") else request["name"]
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"http://{self.headers.get('Host')}/{prefix}{repo_id}"
        if not self.state.create_repo(repo_type, repo_id, bool(request.get("private"))):
            return self._json({"error": "You already created this repo", "url": url}, 409)
        return self._json({"url": url, "name": repo_id, "id": repo_id})

    def _repo_info(self, repo: Repo, revision: str):
        commit = self.state.commit(repo, revision)
        card = card_data(self.state, commit) or {}
        self._json({
            "_id": repo.repo_id, "id": repo.repo_id, "modelId": repo.repo_id, "author": repo.repo_id.split("/")[0],
            "sha": commit.sha, "lastModified": commit.date, "createdAt": commit.date, "private": repo.private,
            "disabled": False, "gated": False, "downloads": 0, "likes": 0, "tags": card.get("tags", []),
            "pipeline_tag": card.get("pipeline_tag"), "library_name": card.get("library_name"),
            "cardData": card or None, "siblings": [{"rfilename": path} for path in sorted(commit.files)],
        })

    def _entry(self, path: str, blob: str) -> dict:
        return {"type": "file", "path": path, "oid": blob, "size": len(self.state.blobs[blob])}

    def _tree(self, repo: Repo, revision: str, folder: str):
        commit = self.state.commit(repo, revision)
        prefix = f"{folder.rstrip('/')}/" if folder else ""
        entries = [self._entry(p, b) for p, b in sorted(commit.files.items()) if p.startswith(prefix)]
        self._json(entries)

    def _paths_info(self, repo: Repo, revision: str, paths: list[str]):
        commit = self.state.commit(repo, revision)
        self._json([self._entry(p, commit.files[p]) for p in paths if p in commit.files])

    def _resolve(self, repo: Repo, revision: str, path: str):
        commit = self.state.commit(repo, revision)
        headers = {"X-Repo-Commit": commit.sha}
        if path not in commit.files:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", headers)
        blob = commit.files[path]
        data = self.state.blobs[blob]
        headers.update({"ETag": f'"{blob}"', "Accept-Ranges": "bytes"})
        status, match = 200, re.match(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if match and data:
            start = int(match.group(1) or 0)
            end = int(match.group(2)) if match.group(2) else len(data) - 1
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            status, data = 206, data[start:end + 1]
        self._send(status, data, headers, content_type="application/octet-stream")

    def _preupload(self, repo: Repo, revision: str, request: dict):
        commit = repo.resolve(revision)
        files = commit.files if commit else {}
        self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                               "oid": files.get(f["path"])} for f in request.get("files", [])]})

    def _commit(self, repo: Repo, revision: str, body: bytes, create_pr: bool):
        if self.state.fail_next_commits > 0:
            self.state.fail_next_commits -= 1
            raise HubError(500, "Internal Error: the commit could not be stored (simulated failure)")
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line["key"] == "header"), {})
        base = self.state.commit(repo, revision)
        if header.get("parentCommit") and header["parentCommit"] != base.sha:
            raise HubError(412, f"parentCommit {header['parentCommit']} is not the head of {revision}")
        files = dict(base.files)
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "file":
                data = base64.b64decode(value["content"]) if value.get("encoding") == "base64" else value["content"]
                data = data.encode() if isinstance(data, str) else data
                self.state.blobs[git_blob_sha(data)] = data
                files[value["path"]] = git_blob_sha(data)
            elif key == "deletedFile":
                files.pop(value["path"], None)
            elif key == "deletedFolder":
                files = {p: b for p, b in files.items() if not p.startswith(value["path"].rstrip("/") + "/")}
            elif key != "header":
                raise HubError(400, f"unsupported commit operation {key!r}: this server stores regular files only")
        message = header.get("summary", "")
        ref, pull_request = revision, None
        if create_pr:
            repo.pull_requests += 1
            pull_request = repo.pull_requests
            ref = f"refs/pr/{pull_request}"
            repo.refs[ref] = base.sha
        elif revision not in repo.refs:
            raise HubError(400, f"cannot commit to {revision!r}: not a branch")
        commit = self.state.add_commit(repo, ref, files, message)
        host = f"http://{self.headers.get('Host')}"
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        self._json({
            "commitOid": commit.sha, "commitUrl": f"{host}/{prefix}{repo.repo_id}/commit/{commit.sha}",
            "pullRequestUrl": f"{host}/{prefix}{repo.repo_id}/discussions/{pull_request}" if pull_request else None,
        })

    def _create_branch(self, repo: Repo, branch: str, request: dict):
        if branch in repo.refs:
            raise HubError(409, f"Reference already exists: refs/heads/{branch}")
        start = self.state.commit(repo, request.get("startingPoint") or "main")
        repo.refs[branch] = start.sha
        self._json({})


class HubServer:
    """A running loopback Hub: `.url`, `.state` and `.stop()`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.state = HubState()
        handler = type("BoundHubRequestHandler", (HubRequestHandler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    server = HubServer(args.host, args.port)
    print(f"Hub API on {server.url}; export HF_ENDPOINT={server.url} HF_HUB_DISABLE_XET=1", flush=True)
    try:
        server.thread.join()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()

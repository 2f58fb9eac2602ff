"""Test fixtures for the model zoo: a loopback HTTP server with Range support and a catalogue
whose entries point at it. The server is a real `http.server` in a thread, so downloads go
through urllib exactly as they would against a publisher."""
from __future__ import annotations

import hashlib
import io
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch
import yaml


def checkpoint_bytes(n: int = 60_000, seed: int = 0) -> bytes:
    """A small genuine torch.save file (zip container), as a published checkpoint would be."""
    g = torch.Generator().manual_seed(seed)
    buf = io.BytesIO()
    torch.save({"model": {"module.encoder.w": torch.randn(n, generator=g)}, "epoch": 1}, buf)
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server API)
        srv = self.server
        rng = self.headers.get("Range")
        srv.requests.append((self.path, rng))
        if self.path in srv.redirects:  # like Dropbox's ?dl=1 links: 302 to the content host
            self.send_response(302)
            self.send_header("Location", srv.redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        if rng and srv.honour_range:
            m = re.fullmatch(r"bytes=(\d+)-", rng)
            start = int(m.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.path in srv.cut_next:  # promise the whole file, send half, hang up
            srv.cut_next.discard(self.path)
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


class ZooServer:
    """`with ZooServer({"/a.pth": b"..."}) as srv:` serves on 127.0.0.1; `srv.url("/a.pth")`."""

    def __init__(self, files: dict[str, bytes]):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.files = dict(files)
        self.httpd.requests = []
        self.httpd.cut_next = set()
        self.httpd.honour_range = True
        self.httpd.redirects = {}
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    @property
    def requests(self):
        return self.httpd.requests

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


def closed_port_url(path: str = "/x.pth") -> str:
    """A loopback URL nobody listens on: connecting fails at once, like having no network."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}{path}"


def entry(filename: str, urls=(), *, sha=None, md5_prefix=None, shared_folder=None,
          fmt="pycontrast", depth=50, **extra) -> dict:
    """One catalogue entry (as YAML data) in the shipped schema."""
    e = {
        "method": "InfoMin", "arch": "resnet50", "epochs": 200, "filename": filename,
        "urls": list(urls), "sha256": sha, "md5_prefix": md5_prefix, "format": fmt,
        "input": "torchvision_rgb", "detectron2": {"MODEL.RESNETS.DEPTH": depth},
        "reported": {"imagenet_linear_top1": {"value": 1.0, "source": "test"}},
    }
    if urls:
        e["url_source"] = "test"
    if shared_folder:
        e["shared_folder"] = shared_folder
    e.update(extra)
    return e


def write_catalog(path, models: dict) -> str:
    data = {
        "version": 1,
        "sources": {"test": "written by the test"},
        "conventions": {"torchvision_rgb": {
            "INPUT.FORMAT": "RGB", "MODEL.PIXEL_MEAN": [123.675, 116.28, 103.53],
            "MODEL.PIXEL_STD": [58.395, 57.12, 57.375], "MODEL.RESNETS.STRIDE_IN_1X1": False}},
        "models": models,
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def resnet18_pycontrast(seed: int = 0) -> tuple[bytes, dict]:
    """A PyContrast-layout checkpoint of a torchvision ResNet-18 whose every tensor is random
    (BN statistics included, so loaded weights cannot be mistaken for a fresh init).
    Returns (file bytes, the torchvision state_dict it holds)."""
    import torchvision

    g = torch.Generator().manual_seed(seed)
    with torch.device("meta"):  # shapes only: skip the initialisation
        state = torchvision.models.resnet18().state_dict()
    tv = {}
    for k, v in state.items():
        if k.startswith("fc."):
            continue
        if k.endswith("num_batches_tracked"):
            tv[k] = torch.tensor(1000, dtype=torch.long)
            continue
        t = torch.rand(v.shape, generator=g) + 0.5 if k.endswith("running_var") else torch.randn(v.shape, generator=g)
        tv[k] = t
    ckpt = {"model": {f"module.encoder.{k}": v for k, v in tv.items()}
            | {"module.head.0.weight": torch.randn(128, 512, generator=g)},
            "epoch": 200}
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    return buf.getvalue(), tv

#!/usr/bin/env python3
"""A Cutroom worker over HTTP, in Python's standard library only (urllib, json).

It leases image.thumbnail jobs from /api/v1/worker, scales each image with ffmpeg, uploads the
thumbnail through a signed URL and completes the job; progress and stages become the job's events,
which its owner follows over WebSocket or SSE as for any other worker. Protocol: docs/WORKER-API.md.

    CUTROOM_API=http://127.0.0.1:8000 CUTROOM_WORKER_TOKEN=cwk_... python3 worker.py [--once]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone

JOB_TYPES = ["image.thumbnail"]
CONTENT_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp"}


class ApiError(Exception):
    def __init__(self, status, body):
        error = (body or {}).get("error", {}) if isinstance(body, dict) else {}
        super().__init__(f"{status} {error.get('code', '')}: {error.get('message', body)}")
        self.status = status
        self.code = error.get("code")


class LeaseLost(Exception):
    """The lease ran out or the job ended (canceled, timed out): stop, and do not report more."""


class Api:
    def __init__(self, base, token):
        self.base = base.rstrip("/")
        self.token = token

    def call(self, method, path, body=None, timeout=30):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as res:
                raw = res.read()
                return res.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = raw.decode(errors="replace")
            error = ApiError(err.code, parsed)
            if error.code == "LEASE_LOST":
                raise LeaseLost(str(error)) from None
            raise error from None


def download(url, path):
    # Signed URLs carry their own authority: no worker token goes to storage.
    with urllib.request.urlopen(url, timeout=60) as res, open(path, "wb") as out:
        shutil.copyfileobj(res, out)


def upload(ticket, path):
    with open(path, "rb") as f:
        data = f.read()
    req = urllib.request.Request(ticket["upload_url"], data=data, method=ticket.get("method", "PUT"))
    for name, value in ticket.get("headers", {}).items():
        req.add_header(name, value)
    with urllib.request.urlopen(req, timeout=120) as res:
        res.read()


def scale_filter(width, height, fit):
    """ffmpeg's filter for sharp's fit modes: cover crops, contain pads, fill stretches, inside/outside keep the aspect."""
    if fit == "fill":
        return f"scale={width}:{height}"
    if fit == "cover":
        return f"scale={width}:{height}:force_original_aspect_ratio=increase,crop={width}:{height}"
    if fit == "contain":
        return f"scale={width}:{height}:force_original_aspect_ratio=decrease,pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:color=black@0"
    if fit == "inside":
        return f"scale={width}:{height}:force_original_aspect_ratio=decrease"
    return f"scale={width}:{height}:force_original_aspect_ratio=increase"  # outside


def thumbnail(source, target, width, height, fit, fmt):
    codec = {"jpeg": ["-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p"], "png": ["-c:v", "png"], "webp": ["-c:v", "libwebp", "-quality", "80"]}[fmt]
    cmd = ["ffmpeg", "-v", "error", "-y", "-i", source, "-frames:v", "1", "-vf", scale_filter(width, height, fit), *codec, target]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {done.stderr.strip()[-500:]}")


class Heartbeat:
    """Renews the lease every third of its length while the job runs; notes when it is lost."""

    def __init__(self, api, links, lease_s):
        self.api, self.links, self.every = api, links, max(0.5, lease_s / 3)
        self.lost = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.wait(self.every):
            try:
                self.api.call("POST", self.links["heartbeat"], {})
            except LeaseLost as err:
                self.lost = err
                return
            except Exception as err:  # a blip: the next beat tries again
                print(f"heartbeat failed: {err}", file=sys.stderr)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def run_job(api, lease, lease_s):
    job, links = lease["job"], lease["links"]
    spec = job["input"]
    fmt = spec.get("format", "webp")
    events = lambda *evs: api.call("POST", links["events"], {"events": list(evs)})  # noqa: E731
    if fmt not in CONTENT_TYPES:
        # This worker's ffmpeg has no AVIF encoder: an honest failure, not a retry.
        api.call("POST", links["fail"], {"error": {"code": "UNSUPPORTED_FORMAT", "message": f"this worker cannot write {fmt}"}})
        return
    tmp = tempfile.mkdtemp(prefix=f"cutroom-{job['id']}-")
    try:
        with Heartbeat(api, links, lease_s) as beat:
            events({"type": "stage", "stage": "fetch", "status": "running"})
            source_file = lease["inputs"].get(spec["file_id"])
            if source_file is None:  # not signed with the lease: ask for a fresh URL
                _, source_file = api.call("GET", links["inputs"].replace("{file_id}", spec["file_id"]))
            source = os.path.join(tmp, "input")
            download(source_file["url"], source)
            events({"type": "stage", "stage": "fetch", "status": "done"}, {"type": "progress", "progress": 30}, {"type": "stage", "stage": "process", "status": "running"})

            target = os.path.join(tmp, f"thumbnail.{EXTENSIONS[fmt]}")
            thumbnail(source, target, spec.get("width", 256), spec.get("height", 256), spec.get("fit", "cover"), fmt)
            events({"type": "stage", "stage": "process", "status": "done"}, {"type": "progress", "progress": 70}, {"type": "stage", "stage": "upload", "status": "running"})

            name = os.path.splitext(source_file.get("filename") or "image")[0] or "image"
            _, ticket = api.call("POST", links["outputs"], {"filename": f"{name}.{EXTENSIONS[fmt]}", "content_type": CONTENT_TYPES[fmt]})
            upload(ticket, target)
            _, output = api.call("POST", ticket["confirm_url"])
            events({"type": "stage", "stage": "upload", "status": "done"}, {"type": "log", "level": "info", "message": f"thumbnail {output['size']} bytes"})
            if beat.lost:
                raise beat.lost
        _, done = api.call("POST", links["complete"], {"result": {"files": [{"file_id": output["id"]}], "format": fmt}})
        print(f"job {job['id']}: {done['status']}", flush=True)
    except LeaseLost as err:
        print(f"job {job['id']}: lease lost, dropping it ({err})", file=sys.stderr, flush=True)
    except Exception as err:
        print(f"job {job['id']}: failed: {err}", file=sys.stderr, flush=True)
        try:
            api.call("POST", links["fail"], {"error": {"code": "WORKER_ERROR", "message": str(err)[:500]}, "retryable": isinstance(err, (urllib.error.URLError, TimeoutError))})
        except LeaseLost:
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--once", action="store_true", help="run one job, then exit (status 3 when none came within --wait)")
    parser.add_argument("--wait", type=int, default=20, help="long poll: seconds each lease request waits for a job")
    parser.add_argument("--lease", type=int, default=30, help="seconds a lease lasts between heartbeats")
    parser.add_argument("--name", default=os.uname().nodename, help="this worker's name on its jobs' running events")
    args = parser.parse_args()
    api = Api(os.environ.get("CUTROOM_API", "http://127.0.0.1:8000"), os.environ["CUTROOM_WORKER_TOKEN"])
    while True:
        try:
            status, lease = api.call("POST", "/api/v1/worker/lease", {"job_types": JOB_TYPES, "wait_s": args.wait, "lease_s": args.lease, "worker": args.name}, timeout=args.wait + 30)
        except (ApiError, urllib.error.URLError, TimeoutError) as err:
            if isinstance(err, ApiError) and err.status in (401, 403):
                sys.exit(f"the API refused this worker: {err}")
            print(f"lease request failed: {err}; retrying in 5 s", file=sys.stderr)
            time.sleep(5)
            continue
        if status == 204:
            if args.once:
                sys.exit(3)
            continue
        # The server may hold a lease shorter than asked (its job lease): beat by what it granted.
        granted = datetime.fromisoformat(lease["expires_at"].replace("Z", "+00:00")) - datetime.now(timezone.utc)
        run_job(api, lease, max(1.0, granted.total_seconds()))
        if args.once:
            return


if __name__ == "__main__":
    main()

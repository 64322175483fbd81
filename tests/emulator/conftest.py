"""Fixtures: one real emulator process per test session, reset before every test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

HERE = Path(__file__).resolve().parent
READY_PREFIX = "MULTISITE_EMULATOR_READY "

# Timings the session's emulator is started with (and reset back to).
REPLICATION_DELAY_MS = 150
REPLICA_CREATING_MS = 300
REPLICA_DELETING_MS = 300
FAILOVER_MS = 300


def start_emulator(*extra: str) -> tuple[subprocess.Popen, str]:
    """Start ``python -m multisite_emulator`` on a free port; return (process, url)."""
    env = dict(os.environ, PYTHONPATH=str(HERE), PYTHONUNBUFFERED="1")
    for var in ("AWS_ENDPOINT_URL", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env.pop(var, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "multisite_emulator", "--host", "127.0.0.1", "--port", "0", *extra],
        cwd=HERE,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(60)
    line = lines[0] if lines else ""
    if not line.startswith(READY_PREFIX):
        proc.kill()
        raise RuntimeError(f"emulator did not report ready within 60 s: {line!r}")
    return proc, line[len(READY_PREFIX):].strip()


def stop_emulator(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


class Emulator:
    def __init__(self, url: str):
        self.url = url

    # -- control API -------------------------------------------------------
    def control(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/_multisite/{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def post(self, path: str, body: Any = None) -> Any:
        status, payload = self.control("POST", path, body if body is not None else {})
        assert status == 200, payload
        return payload

    def get(self, path: str) -> Any:
        status, payload = self.control("GET", path)
        assert status == 200, payload
        return payload

    # -- AWS clients ---------------------------------------------------------
    def client(self, service: str, region: str = "us-east-1") -> Any:
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=self.url,
            aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
            aws_secret_access_key="secret",
            # No retries: tests must see the very error the emulator returned.
            config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=30),
        )


@pytest.fixture(scope="session")
def emulator_process() -> Any:
    proc, url = start_emulator(
        "--exit-on-stdin-eof",
        "--replication-delay-ms",
        str(REPLICATION_DELAY_MS),
        "--replica-creating-ms",
        str(REPLICA_CREATING_MS),
        "--replica-deleting-ms",
        str(REPLICA_DELETING_MS),
        "--failover-ms",
        str(FAILOVER_MS),
    )
    yield proc, url
    stop_emulator(proc)


@pytest.fixture
def emu(emulator_process: Any) -> Emulator:
    _, url = emulator_process
    emulator = Emulator(url)
    emulator.post("reset")
    return emulator


def wait_for(predicate: Any, timeout: float = 5.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)

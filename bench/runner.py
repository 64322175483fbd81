#!/usr/bin/env python3
"""Process-level benchmark runner: cold start (init time), peak memory and artifact sizes.

It serves the Lambda Runtime API on 127.0.0.1 the way Lambda does for a custom runtime
(`GET /2018-06-01/runtime/invocation/next` answers an event with the Lambda-Runtime-* headers;
`POST .../response` and `.../error`), spawns each release binary with the environment Lambda gives
and measures:

* init: time from spawn to the binary's first `GET .../invocation/next` (median and p90 of N
  starts, binaries interleaved so machine noise hits them alike), against `hello` (bench/hello:
  a hello-world lambda_runtime binary built with the same profile in the same run);
* peak RSS (VmHWM from /proc/<pid>/status) after init and after one handled event, the event
  served against the local AWS emulator holding the deployment `drill --setup-only` builds (the
  debug drill of the test build; boto3 adds what the sample events need besides);
* sizes: the stripped host binaries, and the arm64 `bootstrap` of scripts/lambda-build.sh
  (target/lambda/<fn>/bootstrap) when present, each zipped here (deflate, as cargo lambda does).

Python stdlib plus boto3 from the emulator's venv (for the resources only). Writes
target/bench/process.json. Run through `make bench` (scripts/bench.sh).
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ["failover", "scaler", "provisioner", "lag-probe"]
BASELINE = "hello"
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-1"]
HOME = "eu-west-1"
API = "/2018-06-01/runtime"


# --------------------------------------------------------------------------------------------
# The Runtime API


class Invocation:
    """State of one spawned process as seen through the Runtime API."""

    def __init__(self, event: dict | None):
        self.event = event
        self.request_id = str(uuid.uuid4())
        self.lock = threading.Condition()
        self.gets: list[float] = []  # perf_counter of each GET /next
        self.rss_at_get: list[int | None] = []  # VmHWM (kB) read as each GET arrived
        self.served_at: float | None = None
        self.result: tuple[str, float, bytes] | None = None  # (kind, t, body)
        self.init_error: bytes | None = None
        self.pid: int | None = None
        self.stop = threading.Event()


class RuntimeApi(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.current: Invocation | None = None
        self.cfn_responses: list[bytes] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


def vm_hwm_kb(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RuntimeApi

    def log_message(self, *args):  # quiet
        pass

    def _reply(self, status: int, body: bytes = b"", headers: dict | None = None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        now = time.perf_counter()
        inv = self.server.current
        if inv is None or self.path != f"{API}/invocation/next":
            return self._reply(404)
        with inv.lock:
            inv.gets.append(now)
            # The process waits for our answer: its peak RSS so far is its init (or init + event).
            inv.rss_at_get.append(vm_hwm_kb(inv.pid))
            first = len(inv.gets) == 1
            inv.lock.notify_all()
        if first and inv.event is not None:
            inv.served_at = time.perf_counter()
            deadline = int(time.time() * 1000) + 900_000
            headers = {
                "Content-Type": "application/json",
                "Lambda-Runtime-Aws-Request-Id": inv.request_id,
                "Lambda-Runtime-Deadline-Ms": str(deadline),
                "Lambda-Runtime-Invoked-Function-Arn": f"arn:aws:lambda:{HOME}:123456789012:function:bench",
                "Lambda-Runtime-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
            }
            return self._reply(200, json.dumps(inv.event).encode(), headers)
        # No (more) events: hold the long poll, as Lambda does, until the runner ends the process.
        inv.stop.wait(120)
        self.close_connection = True
        try:
            self._reply(410)
        except OSError:
            pass  # the process was ended while it waited: expected

    def do_POST(self):
        now = time.perf_counter()
        body = self._body()
        inv = self.server.current
        if inv is None:
            return self._reply(404)
        with inv.lock:
            if self.path.endswith("/response"):
                inv.result = ("response", now, body)
            elif self.path.endswith("/error") and "/invocation/" in self.path:
                inv.result = ("error", now, body)
            elif self.path == f"{API}/init/error":
                inv.init_error = body
            inv.lock.notify_all()
        self._reply(202, b'{"status":"OK"}', {"Content-Type": "application/json"})

    def do_PUT(self):
        # The provisioner's CloudFormation response (the event's ResponseURL points here).
        body = self._body()
        self.server.cfn_responses.append(body)
        self._reply(200)


# --------------------------------------------------------------------------------------------
# Spawning


# As deployed: the functions get the name of the stack's topology parameter (template.yaml's
# TopologyParameter) and read it on their first event, not during init (shared::TopologyStore).
TOPOLOGY_PARAMETER = "/multisite/bench/topology"


def lambda_env(name: str, api: str, extra: dict | None = None) -> dict:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "AWS_LAMBDA_RUNTIME_API": api,
        "AWS_LAMBDA_FUNCTION_NAME": f"multisite-{name}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]0123456789abcdef",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/multisite-{name}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": HOME,
        "AWS_DEFAULT_REGION": HOME,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "MULTISITE_TOPOLOGY_PARAMETER": TOPOLOGY_PARAMETER,
        "RUST_LOG": "info",
    }
    env.update(extra or {})
    return env


def run_process(server: RuntimeApi, binary: Path, env: dict, event: dict | None, log, timeout: float = 120.0):
    """Spawns `binary`, waits for its first GET (and, with an event, for its answer and its next
    GET), ends it. Returns (invocation, init_ms, handled_ms)."""
    inv = Invocation(event)
    server.current = inv
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(binary)], env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    inv.pid = proc.pid
    wanted = 2 if event is not None else 1
    deadline = t0 + timeout
    with inv.lock:
        while len(inv.gets) < wanted and inv.init_error is None and proc.poll() is None:
            if not inv.lock.wait(timeout=max(0.0, min(0.5, deadline - time.perf_counter()))):
                if time.perf_counter() >= deadline:
                    break
    init_ms = (inv.gets[0] - t0) * 1000 if inv.gets else None
    handled_ms = None
    if event is not None and inv.result and inv.served_at:
        handled_ms = (inv.result[1] - inv.served_at) * 1000
    inv.stop.set()
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    server.current = None
    return inv, init_ms, handled_ms


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(q * (len(v) - 1)))))]


def sequential_chain(requests: list[dict]) -> int:
    """The longest chain of calls where each starts after the previous one ended: the sequential
    round trips a run needed (same rule as bench/emulator/common.rs)."""
    rs = sorted(requests, key=lambda r: r["t_ms"])
    depth = [1] * len(rs)
    for i, r in enumerate(rs):
        for j in range(i):
            if rs[j]["end_ms"] <= r["t_ms"] + 0.5:
                depth[i] = max(depth[i], depth[j] + 1)
    return max(depth, default=0)


def waves(requests: list[dict]) -> list[str]:
    """Calls grouped by overlap in time, in order."""
    out: list[tuple[float, list[str]]] = []
    for r in sorted(requests, key=lambda r: r["t_ms"]):
        if out and r["t_ms"] < out[-1][0]:
            out[-1] = (max(out[-1][0], r["end_ms"]), out[-1][1] + [r["operation"]])
        else:
            out.append((r["end_ms"], [r["operation"]]))
    rendered = []
    for _, ops in out:
        counted = {}
        for op in ops:
            counted[op] = counted.get(op, 0) + 1
        rendered.append(" + ".join(f"{op} x{n}" if n > 1 else op for op, n in counted.items()))
    return rendered


# --------------------------------------------------------------------------------------------
# The emulator and a world of resources for the handled events


class DrillWorld:
    """A fresh emulator holding the deployment `drill --setup-only` builds (the builder the tests,
    benches and drill share: health checks, latency records, ledger, data table replicas, Aurora,
    groups, alarms), kept running until `close`. The topology is the drill's topology file."""

    def __init__(self, drill: Path, log):
        self.proc = subprocess.Popen(
            [str(drill), "--setup-only", "--replication-delay-ms", "0"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        seen = []
        for line in self.proc.stdout:
            seen.append(line)
            if line.startswith("DRILL_READY "):
                _, self.url, topology = line.split()
                break
        else:
            self.proc.wait()
            raise RuntimeError("drill --setup-only ended without DRILL_READY:\n" + "".join(seen[-20:]))
        log.write("".join(seen).encode())
        self.topology = json.loads(Path(topology).read_text())
        # Keep draining its output so it never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def control(self, method: str, path: str, body: dict | None = None):
        import urllib.request

        req = urllib.request.Request(
            self.url + path, method=method, data=json.dumps(body).encode() if body is not None else None
        )
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")

    def close(self):
        # Closing the drill's stdin stops it and its emulator.
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()


def prepare_events(world: DrillWorld) -> dict:
    """What the sample events need besides the deployment: us-east-1's health alarm in ALARM (the
    alarm events evacuate it; failover confirms it with DescribeAlarms), the provisioner's own
    table in HOME (its Create event adds the other replicas) and the topology parameter in HOME.
    Returns the topology."""
    import boto3

    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")

    def client(service: str, region: str):
        return session.client(service, region_name=region, endpoint_url=world.url)

    topology = world.topology
    regions = [cell["region"] for cell in topology["cells"]]
    assert regions == REGIONS, f"the drill's default Regions are {REGIONS}, not {regions}"
    for alarm in topology["cells"][0]["alarms"]:
        client("cloudwatch", alarm["region"]).set_alarm_state(
            AlarmName=alarm["name"], StateValue="ALARM", StateReason="bench")
    client("dynamodb", HOME).create_table(
        TableName="ProvisionedSessions",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client("ssm", HOME).put_parameter(Name=TOPOLOGY_PARAMETER, Value=json.dumps(topology), Type="String", Overwrite=True)
    return topology


def event_for(function: str, server: RuntimeApi) -> dict:
    def load(name):
        return json.loads((ROOT / "events" / name).read_text())

    if function in ("failover", "scaler"):
        return load("alarm-alarm-action-us-east-1-alarm.json")
    if function == "lag-probe":
        return load("scheduled-lag-probe.json")
    if function == "provisioner":
        e = load("provisioner-create.json")
        e["ResponseURL"] = f"http://{server.address}/cfn-response/{uuid.uuid4()}"
        e["ResourceProperties"]["TableName"] = "ProvisionedSessions"
        e["ServiceToken"] = e["ResourceProperties"]["ServiceToken"] = \
            f"arn:aws:lambda:{HOME}:123456789012:function:multisite-provisioner"
        return e
    return {"hello": "world"}


# --------------------------------------------------------------------------------------------
# Sizes


def zip_size(binary: Path) -> int:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, binary.read_bytes())
    return len(buf.getvalue())


def elf_machine(path: Path) -> str:
    with open(path, "rb") as f:
        header = f.read(20)
    machine = int.from_bytes(header[18:20], "little") if header[:4] == b"\x7fELF" else None
    return {0xB7: "arm64", 0x3E: "x86_64"}.get(machine, f"unknown ({machine})")


def sizes(release_dir: Path, lambda_dir: Path) -> dict:
    out = {}
    for name in [BASELINE] + FUNCTIONS:
        row = {}
        host = release_dir / name
        if host.exists():
            row["host_bytes"] = host.stat().st_size
            row["host_zip_bytes"] = zip_size(host)
        arm = lambda_dir / name / "bootstrap"
        if arm.exists() and elf_machine(arm) != "arm64":
            # `cargo lambda build --x86-64` writes the same path: then there is no arm64 figure.
            row["lambda_dir_arch"] = elf_machine(arm)
        elif arm.exists():
            row["arm64_bytes"] = arm.stat().st_size
            row["arm64_zip_bytes"] = zip_size(arm)
            row["arm64_mtime"] = time.strftime("%Y-%m-%d %H:%M", time.localtime(arm.stat().st_mtime))
        out[name] = row
    return out


# --------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=21, help="cold starts per binary (>= 20 for the README)")
    ap.add_argument("--release-dir", default=str(ROOT / "target/release"))
    ap.add_argument("--lambda-dir", default=str(ROOT / "target/lambda"),
                    help="where scripts/lambda-build.sh put the arm64 bootstraps (<dir>/<fn>/bootstrap)")
    ap.add_argument("--out", default=str(ROOT / "target/bench/process.json"))
    ap.add_argument("--skip-events", action="store_true", help="init figures only (no emulator)")
    ap.add_argument("--path-runs", type=int, default=5, help="runs per critical-path figure of the binaries")
    ap.add_argument("--drill", default=str(Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug/drill"),
                    help="the drill binary that builds the deployment (`drill --setup-only`)")
    args = ap.parse_args()

    release = Path(args.release_dir)
    binaries = {name: release / name for name in [BASELINE] + FUNCTIONS}
    missing = [str(p) for p in binaries.values() if not p.exists()]
    if missing:
        print(f"missing release binaries (cargo build --workspace --release --locked --bins): {missing}")
        return 2
    logdir = ROOT / "target/bench/logs"
    logdir.mkdir(parents=True, exist_ok=True)
    server = RuntimeApi()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    result: dict = {"starts": args.starts, "init": {}, "rss": {}, "events": {}}

    # 1. Init: interleaved cold starts, nothing else running from us.
    init_ms = {name: [] for name in binaries}
    init_rss = {name: [] for name in binaries}
    with open(logdir / "init.log", "wb") as log:
        for name, path in binaries.items():  # one warm-up each (page cache), not counted
            run_process(server, path, lambda_env(name, server.address), None, log)
        for _ in range(args.starts):
            for name, path in binaries.items():
                inv, ms, _ = run_process(server, path, lambda_env(name, server.address), None, log)
                if ms is None:
                    print(f"{name}: no GET /next (init error: {inv.init_error!r}); see {logdir / 'init.log'}")
                    return 1
                init_ms[name].append(ms)
                if inv.rss_at_get and inv.rss_at_get[0]:
                    init_rss[name].append(inv.rss_at_get[0])
    base = statistics.median(init_ms[BASELINE])
    for name in binaries:
        med = statistics.median(init_ms[name])
        result["init"][name] = {
            "median_ms": med, "p90_ms": pct(init_ms[name], 0.9), "min_ms": min(init_ms[name]),
            "ratio_vs_hello": med / base, "samples": init_ms[name],
        }
        result["rss"][name] = {"init_kb": max(init_rss[name]) if init_rss[name] else None}
        print(f"init {name:12s} median {med:6.2f} ms  p90 {pct(init_ms[name], 0.9):6.2f} ms  "
              f"x{med / base:4.2f}  VmHWM {result['rss'][name]['init_kb']} kB")

    # 2. One handled event per function against the emulator.
    if not args.skip_events:
        drill = Path(args.drill)
        if not drill.exists():
            print(f"missing {drill} (cargo build --workspace --all-targets --locked)")
            return 2
        with open(logdir / "world.log", "wb") as world_log:
            emulator = DrillWorld(drill, world_log)
        try:
            prepare_events(emulator)
            for name in ["provisioner", "lag-probe", "scaler", "failover", BASELINE]:
                extra = {"AWS_ENDPOINT_URL": emulator.url, "PROVISIONER_POLL_INTERVAL_MS": "100"}
                event = event_for(name, server)
                with open(logdir / f"event-{name}.log", "wb") as log:
                    inv, ms, handled = run_process(server, binaries[name],
                                                   lambda_env(name, server.address, extra), event, log)
                kind, body = (inv.result[0], inv.result[2]) if inv.result else ("timeout", b"")
                entry = {"outcome": kind, "handled_ms": handled,
                         "init_kb": inv.rss_at_get[0] if inv.rss_at_get else None,
                         "after_event_kb": inv.rss_at_get[1] if len(inv.rss_at_get) > 1 else vm_hwm_kb(None)}
                if kind != "response":
                    entry["error"] = body.decode(errors="replace")[:500]
                if name == "provisioner":
                    answers = [json.loads(b) for b in server.cfn_responses]
                    entry["cloudformation"] = [{"Status": a.get("Status"), "Reason": a.get("Reason")} for a in answers]
                    if answers and answers[-1].get("Status") != "SUCCESS":
                        entry["outcome"] = "response (CloudFormation FAILED)"
                result["events"][name] = entry
                result["rss"][name]["after_event_kb"] = entry["after_event_kb"]
                print(f"event {name:12s} {entry['outcome']:10s} handled in "
                      f"{handled if handled is None else round(handled, 1)} ms  VmHWM after {entry['after_event_kb']} kB"
                      + (f"  error: {entry.get('error')}" if kind != "response" else ""))
            # The release binaries' own critical path: failover (fresh world per run, the writer's
            # Region evacuated) with 0 and 200 ms per call, and one lag-probe run, from the request log.
            result["binary_paths"] = []
            for name, latency, runs in [("failover", 0, args.path_runs), ("failover", 200, args.path_runs),
                                        ("lag-probe", 0, args.path_runs)]:
                walls, last = [], None
                for _ in range(runs):
                    emulator.close()
                    with open(logdir / "world.log", "ab") as world_log:
                        emulator = DrillWorld(drill, world_log)
                    prepare_events(emulator)
                    for region in REGIONS:
                        emulator.control("POST", "/_multisite/latency", {"region": region, "ms": latency})
                    emulator.control("DELETE", "/_multisite/requests")
                    extra = {"AWS_ENDPOINT_URL": emulator.url}
                    with open(logdir / f"path-{name}.log", "wb") as log:
                        inv, _, handled = run_process(server, binaries[name],
                                                      lambda_env(name, server.address, extra),
                                                      event_for(name, server), log)
                    requests = emulator.control("GET", "/_multisite/requests")["requests"]
                    for region in REGIONS:
                        emulator.control("POST", "/_multisite/latency", {"region": region, "ms": 0})
                    if handled is not None:
                        walls.append(handled)
                    last = (inv.result[0] if inv.result else "timeout", requests)
                outcome, requests = last
                control = [r for r in requests if r["service"] != "dynamodb"]
                ledger = [r for r in requests if r["service"] == "dynamodb"]
                # Until the actions were done: calls that started before the last control-plane
                # call ended (the audit write after it is not on the user's path).
                acted_at = max((r["end_ms"] for r in control), default=None)
                until_acted = [r for r in requests if acted_at is not None and r["t_ms"] < acted_at]
                entry = {"function": name, "latency_ms": latency, "runs": runs, "outcome": outcome,
                         "wall_ms_median": statistics.median(walls) if walls else None,
                         "calls": len(requests), "sequential_round_trips": sequential_chain(requests),
                         "until_acted_round_trips": sequential_chain(until_acted),
                         "control_plane_round_trips": sequential_chain(control),
                         "ledger_round_trips": sequential_chain(ledger), "waves": waves(requests)}
                result["binary_paths"].append(entry)
                print(f"path {name:10s} {latency:3d} ms/call: {outcome}, median {entry['wall_ms_median']} ms, "
                      f"{entry['calls']} calls, {entry['sequential_round_trips']} sequential "
                      f"(until the actions are done {entry['until_acted_round_trips']}; "
                      f"control plane {entry['control_plane_round_trips']}, ledger {entry['ledger_round_trips']})")
                print("   " + " -> ".join(entry["waves"]))
        finally:
            emulator.close()

    # 3. Sizes.
    result["sizes"] = sizes(release, Path(args.lambda_dir))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""CLI: python -m multisite_emulator --host 127.0.0.1 --port 0 [options].

Prints exactly one line ``MULTISITE_EMULATOR_READY http://HOST:PORT`` to
stdout once it serves, then nothing else there (stray prints go to stderr so
a parent that stops reading stdout can never block us). Exits cleanly on
SIGTERM/SIGINT and, with --exit-on-stdin-eof, when stdin reaches EOF, so a
parent test process that dies never leaves the emulator orphaned.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="multisite_emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--replication-delay-ms", type=float, default=100.0)
    parser.add_argument("--replica-creating-ms", type=float, default=300.0)
    parser.add_argument("--replica-deleting-ms", type=float, default=300.0)
    parser.add_argument("--failover-ms", type=float, default=300.0)
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    for name in ("replication_delay_ms", "replica_creating_ms", "replica_deleting_ms", "failover_ms"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0")
    return args


def _watch_stdin(stop: threading.Event) -> None:
    try:
        while sys.stdin.buffer.read1(4096):
            pass
    except (OSError, ValueError):
        pass
    stop.set()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    logging.getLogger("werkzeug").setLevel(logging.INFO if args.verbose else logging.ERROR)

    from .server import build_app, make_http_server
    from .state import Defaults

    app, state = build_app(
        Defaults(
            replication_delay_ms=args.replication_delay_ms,
            replica_creating_ms=args.replica_creating_ms,
            replica_deleting_ms=args.replica_deleting_ms,
            failover_ms=args.failover_ms,
        )
    )
    server = make_http_server(args.host, args.port, app)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if args.exit_on_stdin_eof:
        threading.Thread(target=_watch_stdin, args=(stop,), name="stdin-eof", daemon=True).start()

    serve = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="http", daemon=True)
    serve.start()
    shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "") else args.host
    print(f"MULTISITE_EMULATOR_READY http://{shown_host}:{server.server_port}", flush=True)
    sys.stdout = sys.stderr

    # Wait in short slices so signal handlers run promptly on the main thread.
    while not stop.wait(0.1):
        pass
    server.shutdown()
    state.scheduler.stop()
    server.server_close()
    return 0


if __name__ == "__main__":
    code = main()
    # The server and scheduler are stopped and there is nothing left to save:
    # skip the ~1 s interpreter teardown of moto's huge module graph so that
    # test harnesses stopping us per test stay fast.
    sys.stderr.flush()
    sys.__stdout__.flush()
    os._exit(code)

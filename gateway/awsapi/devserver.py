"""Run just the AWS-compatible API with chosen services (crash tests and quick experiments).

    python -m gateway.awsapi.devserver --home DIR --port 0 --services kinesis,sqs

prints ``listening PORT`` on stdout once ready and serves until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeloop.config import load_config
from gateway.awsapi.server import AwsApi
from gateway.sinks.registry import SERVICE_FACTORIES
from gateway.storage.durable import GroupSync


async def serve(home: Path, port: int, names: list[str], fsync: str) -> None:
    config = load_config(overrides={"data_dir": str(home), "api.port": port, "durability.fsync": fsync})
    sync = GroupSync(config.durability.fsync, config.durability.interval_ms)
    built: dict[str, Any] = {}
    api = AwsApi(config)
    for name in SERVICE_FACTORIES:
        if name in names:
            built[name] = await SERVICE_FACTORIES[name](home, config, sync, built)
            api.register(built[name])
    unknown = sorted(set(names) - set(SERVICE_FACTORIES))
    if unknown:
        raise SystemExit(f"unknown services: {', '.join(unknown)} (known: {', '.join(SERVICE_FACTORIES)})")
    bound = await api.start()
    print(f"listening {bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await api.stop()
    for service in reversed(list(built.values())):
        await service.stop()
    await sync.close()


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed (as the gateway runs), else asyncio's default."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--services", default=",".join(SERVICE_FACTORIES))
    parser.add_argument("--fsync", default="always", choices=["always", "interval", "never"])
    args = parser.parse_args(argv)
    names = [n for n in args.services.split(",") if n]
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(serve(args.home, args.port, names, args.fsync))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()

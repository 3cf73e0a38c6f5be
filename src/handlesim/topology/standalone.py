"""One node in its own process, on its own SQLite store: `python -m handlesim.topology.standalone --help`.

The crash tests run nodes this way so they can SIGKILL one and start it again on the same store (and, with
`--mirror-of` / `--peer`, a primary and its mirror as two processes). On first start the store gets the node's
prefix handle (`0.NA/<prefix>`: site, admin group, the owner's hashed secret); later starts keep what is there.
The process prints `ready <port>` on stdout once it serves, and stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from ..core.auth import hash_secret
from ..core.handle import Prefix
from ..core.prefixes import http_site, owner_identity, prefix_record
from ..core.service import HandleService, ServiceConfig, ServiceLimits
from ..net.limits import ServerLimits
from ..net.replication import Replicator
from ..net.server import NodeServer
from ..store import SqliteStore
from .schema import TopologyConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m handlesim.topology.standalone", description=__doc__)
    parser.add_argument("--store", type=Path, required=True, help="SQLite file of the node (created if missing)")
    parser.add_argument("--prefix", required=True, help="prefix the node homes, e.g. 88.101.1001")
    parser.add_argument("--secret", default=None,
                        help="the prefix owner's secret (300:0.NA/<prefix>); default: $HANDLESIM_SECRET")
    parser.add_argument("--host", default=TopologyConfig.host, help="loopback address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0: an ephemeral one, printed when ready)")
    parser.add_argument("--node-id", default=None, help="name in stats and messages (default ent-<prefix>)")
    parser.add_argument("--mirror-of", default=None, help="make this node a read-only mirror of that primary URL")
    parser.add_argument("--peer", action="append", default=[], help="URL of a mirror this primary replicates to")
    parser.add_argument("--iterations", type=int, default=TopologyConfig.secret_iterations,
                        help="PBKDF2 iterations for the stored secret")
    parser.add_argument("--max-in-flight", type=int, default=ServerLimits.max_in_flight)
    parser.add_argument("--synchronous", choices=("normal", "full"), default="normal",
                        help="SQLite synchronous mode (normal: survives SIGKILL; full: also power loss)")
    args = parser.parse_args(argv)
    if args.secret is None:
        args.secret = os.environ.get("HANDLESIM_SECRET")
    if not args.secret:
        parser.error("give --secret or set HANDLESIM_SECRET")
    return args


async def serve(args: argparse.Namespace) -> None:
    prefix = Prefix.from_text(args.prefix)
    owner = owner_identity(prefix)
    store = SqliteStore(args.store, synchronous=args.synchronous)
    config = ServiceConfig(args.node_id or f"ent-{prefix.text}", homed_prefixes=(prefix.text,),
                           server_admins=(owner,), read_only=args.mirror_of is not None,
                           primary=args.mirror_of or "", limits=ServiceLimits(),
                           secret_iterations=args.iterations)
    service = HandleService(config, store)
    replicator = Replicator(service, owner, args.secret) if args.peer else None
    if replicator is not None:
        replicator.set_peers(list(args.peer))
    server = NodeServer(service, replicator=replicator, limits=ServerLimits(max_in_flight=args.max_in_flight),
                        meta={"role": "mirror" if args.mirror_of else "enterprise", "prefix": prefix.text})
    port = await server.start(args.host, args.port)
    if store.get(prefix.prefix_handle().key) is None:
        site = http_site(config.node_id, [(args.host, port)])
        store.put(prefix_record(prefix, sites=[site],
                                secret_hash=hash_secret(args.secret, os.urandom(16), args.iterations)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"ready {port}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()
        store.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

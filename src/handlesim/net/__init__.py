"""aiohttp adapters: a node's HTTP server, the pooled client transport, and the REST <-> core request mapping."""

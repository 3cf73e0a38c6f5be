"""The pure Handle core: value types, codes, node service and resolution logic. No I/O, no clock, no asyncio."""

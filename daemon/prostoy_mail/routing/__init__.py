"""Routing of inbound mail: pure functions over values (no I/O, no store, no asyncio)."""

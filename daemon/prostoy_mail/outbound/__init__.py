"""Sending: the outbound spool, its workers and the connections to the next servers."""

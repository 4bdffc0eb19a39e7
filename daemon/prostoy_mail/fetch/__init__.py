"""Fetching from external mailboxes (gateways): IMAP with IDLE, POP3 by polling."""

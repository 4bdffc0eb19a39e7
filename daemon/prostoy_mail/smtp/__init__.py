"""The SMTP edge: inbound mail for the domain (in worker processes or the daemon), and submission."""

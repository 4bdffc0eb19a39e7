"""Passwords: our users' (Argon2 hashes, logins throttled) and those of external servers we log in to."""

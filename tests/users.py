"""Test users with passwords, hashed once per test run (Argon2 is slow by design)."""

from __future__ import annotations

from prostoy_mail.auth.password_hashes import hash_password

PASSWORDS = {"ivanov": "ivanov-pw", "petrov": "petrov-pw"}
HASHES = {login: hash_password(pw) for login, pw in PASSWORDS.items()}

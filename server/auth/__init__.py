"""Authentication: passwords, booth credentials, short-lived JWTs, login rate limits."""

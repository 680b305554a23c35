"""The domain: pure code with no I/O. Services and the CLI call it; it calls nothing outside itself."""

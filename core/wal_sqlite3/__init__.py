"""Django's SQLite backend with the database in WAL mode (see core.sqlite_wal)."""

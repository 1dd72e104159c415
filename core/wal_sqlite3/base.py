"""Django's SQLite backend, with each connection in WAL mode and its files kept.

See core.sqlite_wal for why: the mail daemons read the file while the panel
writes, and need the `-wal` and `-shm` files to stay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.db.backends.sqlite3 import base, creation

from core import sqlite_wal


def _remove_wal_files(name: str) -> None:
    """A new database file must not meet an old one's `-wal` (SQLite would replay it)."""
    for suffix in ("-wal", "-shm"):
        Path(name + suffix).unlink(missing_ok=True)


# Django's test database hooks are private, and django-stubs leaves them out.
class DatabaseCreation(creation.DatabaseCreation):
    def _create_test_db(  # type: ignore[misc]
            self, verbosity: int, autoclobber: bool, keepdb: bool = False) -> Any:
        name = self._get_test_db_name()  # type: ignore[attr-defined]
        if not keepdb and not self.is_in_memory_db(name):
            _remove_wal_files(name)
        return super()._create_test_db(verbosity, autoclobber, keepdb)  # type: ignore[misc]

    def _destroy_test_db(  # type: ignore[misc]
            self, test_database_name: str, verbosity: int) -> None:
        super()._destroy_test_db(test_database_name, verbosity)  # type: ignore[misc]
        if not self.is_in_memory_db(test_database_name):
            _remove_wal_files(test_database_name)


class DatabaseWrapper(base.DatabaseWrapper):
    creation_class = DatabaseCreation

    def _path(self) -> Path | None:
        name = str(self.settings_dict["NAME"])
        return None if self.is_in_memory_db() else Path(name)

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        connection = super().get_new_connection(conn_params)
        path = self._path()
        if path is not None:
            sqlite_wal.use_wal(connection, path)
        return connection

    def _close(self) -> None:  # type: ignore[misc]  # (private in django-stubs too)
        path = self._path()
        if self.connection is not None and path is not None:
            sqlite_wal.shrink(self.connection, path)
        super()._close()  # type: ignore[misc]

"""What the benchmarks that run the panel in-process share: Django set up on a
scratch data directory, and the load average they report beside their figures."""

from __future__ import annotations

import os
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def setup_django(data_dir: Path, **environ: str) -> None:
    """Django on `data_dir`, with `environ` (MAILADMIN_* settings) set first;
    MAILADMIN_DATA_GROUP defaults to postfix, so the daemons read the SQLite file."""
    os.environ["MAILADMIN_DATA_DIR"] = str(data_dir)
    os.environ.update(environ)
    os.environ.setdefault("MAILADMIN_DATA_GROUP", "postfix")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailadmin.settings")
    if str(PROJECT) not in sys.path:
        sys.path.insert(0, str(PROJECT))
    import django

    django.setup()

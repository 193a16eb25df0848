"""Row ids in URLs (paths and query strings): a number a row can have, else refused before any query.

SQLite and PostgreSQL ids are signed 64-bit integers; a larger number in a URL would otherwise
reach the driver and fail there (a 500 for a typo, or for anyone probing the service).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from broadcaster.models import MAX_ROW_ID

__all__ = ["MAX_ROW_ID", "RowId", "RowIdFilter", "is_row_id"]

RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="A row's id (1 to 2^63 - 1).")]
#: An optional row id in the query string (a filter): any other number is a 422 naming it.
RowIdFilter = Annotated[int | None, Query(ge=1, le=MAX_ROW_ID, description="A row's id (1 to 2^63 - 1).")]


def is_row_id(value: int) -> bool:
    """Whether a database row can have this id (a page answers 404 for any other)."""
    return 1 <= value <= MAX_ROW_ID

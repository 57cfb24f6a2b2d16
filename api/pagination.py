"""Limit/offset pagination for every list: ``?limit=50&offset=0`` → ``{"items", "total", "limit", "offset",
"next_offset"}`` (``next_offset`` is null on the last page)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "Page", "PageParams", "page_params", "paginate"]

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_OFFSET = 10_000_000

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int
    next_offset: int | None


@dataclass(frozen=True, slots=True)
class PageParams:
    limit: int = DEFAULT_LIMIT
    offset: int = 0

    def page(self, items: Sequence[T], total: int) -> Page[T]:
        following = self.offset + len(items)
        return Page[T](items=list(items), total=total, limit=self.limit, offset=self.offset,
                       next_offset=following if following < total else None)

    def slice(self, items: Sequence[T]) -> Page[T]:
        """A page of a list already in memory (small lists: a home's devices, device health)."""
        return self.page(items[self.offset:self.offset + self.limit], len(items))


async def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="How many items at most")] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="How many items to skip")] = 0,
) -> PageParams:
    # async: run on the event loop, not handed to a thread (api.deps._now says why)
    return PageParams(limit=limit, offset=offset)


PageDep = Annotated[PageParams, Depends(page_params)]


def paginate(session: Session, stmt: Select[Any], params: PageParams,
             convert: Callable[[Any], T]) -> Page[T]:
    """Run ``stmt`` (ordered, for a stable order) for one page, and count its rows.

    One query where it can: the page's rows each carry the total (``count(*) over ()``), so a list costs one
    round trip to the database instead of two. A page past the end has no row to carry it, and a DISTINCT or
    GROUP BY statement counts differently: those are counted by a query of their own."""
    if stmt._distinct or stmt._group_by_clauses:  # SQLAlchemy has no public accessor for these
        return _paginate_counted(session, stmt, params, convert)
    rows = session.execute(stmt.add_columns(func.count().over().label("_total"))
                           .limit(params.limit).offset(params.offset)).all()
    if rows:
        total = int(rows[0][-1])
    elif params.offset == 0:
        total = 0
    else:
        total = _count(session, stmt)
    return params.page([convert(row[0]) for row in rows], total)


def _paginate_counted(session: Session, stmt: Select[Any], params: PageParams,
                      convert: Callable[[Any], T]) -> Page[T]:
    total = _count(session, stmt)
    rows = session.scalars(stmt.limit(params.limit).offset(params.offset)).all()
    return params.page([convert(row) for row in rows], total)


def _count(session: Session, stmt: Select[Any]) -> int:
    return session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0

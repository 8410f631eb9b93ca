"""Request and response schemas for the items API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints


def _no_nul(value: str) -> str:
    """PostgreSQL text cannot hold NUL characters; refuse them as a field error."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(_no_nul)]
Description = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_no_nul)]


class ItemCreate(BaseModel):
    """Body of POST and PUT."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description = ""


class ItemPatch(BaseModel):
    """Body of PATCH; omitted fields keep their value."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Description | None = None


class Item(BaseModel):
    id: int
    name: str
    description: str
    created_at: datetime
    updated_at: datetime


class ItemPage(BaseModel):
    """One page of items; pass ``next_after`` as ``after`` to get the next page."""

    items: list[Item]
    next_after: int | None

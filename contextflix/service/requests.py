"""The one request model: REST, the Gradio endpoints and the service validate with it.

:class:`RecommendRequest` checks what can be checked without the bundle (types, ranges,
sizes, which fields go together); the Recommender then checks what needs the bundle (known
ids, the data set's rating range, genre names, which models it holds). Sizes are checked
before any per-element work, so a huge request costs no more to refuse than a small one, and
error messages quote at most ``QUOTE`` characters of a bad value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from contextflix.service.errors import RecommenderError

MAX_HISTORY = 1000
"""Movies a visitor's history may hold."""
MAX_K = 100
MAX_BATCH = 100
"""Requests one recommend_batch call may hold."""
MAX_STRING = 200
"""Characters any string field may hold."""
MAX_GENRES = 30
MAX_LIST = 1000
"""Page size of users() and movies()."""
MAX_QUERY_CHARS = 200
MAX_QUERY_WORDS = 8
"""Distinct words a title search may hold (each word is one scan of the titles)."""
QUOTE = 40
"""Characters of a bad value an error message quotes."""

TimeOfDay = Literal["morning", "afternoon", "evening", "night"]
Device = Literal["mobile", "tablet", "desktop", "tv"]
ModelName = Literal[
    "hybrid", "hybrid_no_context", "collaborative", "content", "sequential", "popularity"
]
UNKNOWN_CONTEXT = ("", "unknown")


def quote(value: Any) -> str:
    """A short, safe description of a value for an error message (never a long repr)."""
    if isinstance(value, str):
        return repr(value[:QUOTE] + ("..." if len(value) > QUOTE else ""))
    if value is None or isinstance(value, bool | int | float):
        return repr(value)[:QUOTE]
    if isinstance(value, list | tuple | dict | set):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a value of type {type(value).__name__}"


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a whole number, not true/false")
    return value


class RecommendRequest(BaseModel):
    """Recommendations for a data-set user (``user_id``) or a visitor (``history``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, str_max_length=MAX_STRING)

    user_id: int | None = Field(None, ge=0, description="a data-set user's id (or give history)")
    history: list[int] = Field(
        default_factory=list,
        max_length=MAX_HISTORY,
        description="a visitor's MovieLens movie ids, oldest first",
    )
    ratings: dict[int, float] | None = Field(
        None, description="optional {movie_id: stars} for movies in history (others count as liked)"
    )
    time_of_day: TimeOfDay | None = Field(None, description="the visitor's time of day")
    device: Device | None = Field(None, description="the visitor's device")
    k: int = Field(10, ge=1, le=MAX_K, description="how many movies")
    genres: str | list[str] | None = Field(
        None, description="keep only these genres (a list, or comma-separated)"
    )
    exclude_seen: bool = Field(True, description="leave out movies in the history")
    model: ModelName = Field("hybrid", description="which model ranks")

    @field_validator("user_id", "k", mode="before")
    @classmethod
    def _whole_number(cls, value: Any) -> Any:
        return _no_bool(value)

    @field_validator("history", mode="before")
    @classmethod
    def _history(cls, value: Any) -> Any:
        if value is None:
            return []
        if not isinstance(value, list | tuple):
            raise ValueError("must be a list of movie ids, oldest first")
        if len(value) > MAX_HISTORY:  # before any per-id work
            raise ValueError(f"may hold at most {MAX_HISTORY} movies, not {len(value)}")
        return [_no_bool(v) for v in value]

    @field_validator("ratings", mode="before")
    @classmethod
    def _ratings(cls, value: Any) -> Any:
        if value is None or value == {}:
            return None
        if not isinstance(value, Mapping):
            raise ValueError("must map movie ids to ratings")
        if len(value) > MAX_HISTORY:
            raise ValueError(f"may hold at most {MAX_HISTORY} ratings, not {len(value)}")
        for rating in value.values():
            if isinstance(rating, bool) or (
                isinstance(rating, float) and not math.isfinite(rating)
            ):
                raise ValueError(f"ratings must be finite numbers, not {quote(rating)}")
        return value

    @field_validator("time_of_day", "device", mode="before")
    @classmethod
    def _context(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            return None if value in UNKNOWN_CONTEXT else value
        return value

    @field_validator("genres", mode="before")
    @classmethod
    def _genre_size(cls, value: Any) -> Any:
        if isinstance(value, list | tuple) and len(value) > MAX_GENRES:
            raise ValueError(f"may hold at most {MAX_GENRES} genres, not {len(value)}")
        return value

    @field_validator("genres")
    @classmethod
    def _genre_list(cls, value: str | list[str] | None) -> list[str] | None:
        if isinstance(value, str):
            value = value.split(",")
        names = [g.strip() for g in value or [] if g.strip()]
        if len(names) > MAX_GENRES:
            raise ValueError(f"may hold at most {MAX_GENRES} genres, not {len(names)}")
        return names or None

    @model_validator(mode="after")
    def _fields_that_go_together(self) -> RecommendRequest:
        if self.user_id is not None and self.history:
            raise ValueError("give either user_id (a data-set user) or history, not both")
        if self.ratings and not self.history:
            raise ValueError("ratings need the rated movies in history")
        listed = set(self.history)
        for movie in self.ratings or {}:
            if movie not in listed:
                raise ValueError(f"rating given for movie {quote(movie)}, which is not in history")
        return self


def parse_request(fields: Mapping[str, Any]) -> RecommendRequest:
    """Validate a request's fields, or raise RecommenderError with one short message."""
    if not isinstance(fields, Mapping):
        raise RecommenderError(f"a request must be an object of fields, not {quote(fields)}")
    try:
        return RecommendRequest.model_validate(dict(fields))
    except ValidationError as error:
        raise RecommenderError(describe(error)) from None


def describe(error: ValidationError) -> str:
    """The first problem of a ValidationError in one sentence, quoting a short prefix."""
    first = error.errors(include_url=False)[0]
    loc = (
        [first["loc"][0]] + [p for p in first["loc"][1:] if isinstance(p, int)]
        if first["loc"]
        else []
    )
    where = ".".join(quote(p)[1:-1] if isinstance(p, str) else str(p) for p in loc)
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        return f"unknown field {where or '?'}"
    shown = f" (got {quote(first['input'])})" if "input" in first and first["loc"] else ""
    return f"{where}: {message}{shown}" if where else message

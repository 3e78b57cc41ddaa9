"""The public API, twice: named Gradio endpoints and REST routes under /api/, one implementation.

``Api`` validates inputs and calls the service; both faces return exactly its dicts, so a
program gets the same JSON from ``gradio_client`` and from ``curl``. Bad input becomes
``gr.Error(message)`` on the Gradio face and HTTP 4xx ``{"error": message}`` on REST; anything
unexpected is logged with its traceback and answered with a generic message, never the trace.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import gradio as gr
from fastapi import APIRouter, Body, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from contextflix.service.errors import RecommenderError
from contextflix.web.events import EventLog

log = logging.getLogger(__name__)

INTERNAL_ERROR = "Something went wrong on our side; the details are in the server log."


USER_ERRORS: tuple[type[Exception], ...] = (RecommenderError,)


class Service(Protocol):
    """What the web layer needs from ``contextflix.service.Recommender`` (DESIGN.md shapes)."""

    def recommend(self, **kwargs: Any) -> dict: ...
    def similar(self, item_id: int, k: int = 10) -> dict: ...
    def history(self, user_id: int, limit: int | None = None) -> dict: ...
    def preferences(self, user_id: int) -> dict: ...
    def users(self, limit: int = 20, offset: int = 0) -> dict: ...
    def movies(
        self, query: str = "", genre: str | None = None, limit: int = 20, offset: int = 0
    ) -> dict: ...
    def genres(self) -> dict: ...
    def health(self) -> dict: ...
    def ab_results(self) -> dict: ...


def _blank_to_none(value: Any) -> Any:
    """Forms and query strings send "" for "not given"; the service wants None."""
    return None if value is None or (isinstance(value, str) and not value.strip()) else value


class Api:
    """The API's functions; each returns the JSON object of DESIGN.md's API section.

    Validation lives in the service (one place, one message style); this layer only maps
    "not given" from forms to None and adds the app's own online A/B results.
    """

    def __init__(self, service: Service, events: EventLog | None = None) -> None:
        self.service = service
        self.events = events

    def health(self) -> dict:
        """Service status: "ok" or "degraded" (a model is missing), the bundle and its models."""
        return self.service.health()

    def users(self, limit: int = 50, offset: int = 0) -> dict:
        """Data-set users (MovieLens user ids) with their number of ratings, paged."""
        return self.service.users(limit=limit, offset=offset)

    def movies(self, query: str = "", genre: str = "", limit: int = 20, offset: int = 0) -> dict:
        """Search the catalogue by title (case and accents ignored) and/or one genre."""
        return self.service.movies(
            query=query or "", genre=_blank_to_none(genre), limit=limit, offset=offset
        )

    def recommend(
        self,
        user_id: int | None = None,
        history: list[int] | None = None,
        ratings: dict | None = None,
        time_of_day: str | None = None,
        device: str | None = None,
        k: int = 10,
        genres: str | None = None,
        exclude_seen: bool = True,
        model: str = "hybrid",
    ) -> dict:
        """Top-k movies for a data-set user (user_id) or a new visitor (history of movie ids,
        optional ratings {movie_id: stars}), in a context (time_of_day: morning|afternoon|
        evening|night; device: mobile|tablet|desktop|tv; omitted = unknown), optionally limited
        to genres (comma-separated), from one model (hybrid|hybrid_no_context|collaborative|
        content|sequential|popularity). Each item says why it was picked (explanation, reasons)."""
        return self.service.recommend(
            user_id=_blank_to_none(user_id),
            history=history or None,
            ratings=ratings or None,
            time_of_day=_blank_to_none(time_of_day),
            device=_blank_to_none(device),
            k=k,
            genres=_blank_to_none(genres),
            exclude_seen=bool(exclude_seen),
            model=_blank_to_none(model) or "hybrid",
        )

    def movie_genres(self) -> dict:
        """Every genre of the catalogue."""
        return self.service.genres()

    def user_history(self, user_id: int, limit: int = 50) -> dict:
        """A data-set user's ratings, most recent first, with the context of each."""
        return self.service.history(user_id=user_id, limit=limit)

    def similar_movies(self, item_id: int, k: int = 10) -> dict:
        """Movies like item_id (a MovieLens movie id), each with its similarity and why."""
        return self.service.similar(item_id=item_id, k=k)

    def user_preferences(self, user_id: int) -> dict:
        """A data-set user's genre profile: share of their ratings, count and mean rating."""
        return self.service.preferences(user_id=user_id)

    def ab_test_results(self) -> dict:
        """Offline A/B result of the bundle (hybrid without vs with context, paired) and the
        live online test of this app (per-arm click-through rate with 95% intervals)."""
        result = self.service.ab_results() or {}
        offline = result.get("offline", result)
        online = self.events.summary() if self.events is not None else result.get("online", {})
        return {"offline": offline, "online": online}


# --- Gradio face -------------------------------------------------------------------------------

F = TypeVar("F", bound=Callable[..., Any])
GRADIO_ENDPOINTS = (
    "health",
    "users",
    "movies",
    "recommend",
    "movie_genres",
    "user_history",
    "similar_movies",
    "user_preferences",
    "ab_test_results",
)


def friendly(fn: F) -> F:
    """Turn user errors into gr.Error(message) and anything else into a generic gr.Error."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except USER_ERRORS as error:
            raise gr.Error(str(error), print_exception=False) from None
        except Exception:
            log.exception("%s failed", getattr(fn, "__name__", "endpoint"))
            raise gr.Error(INTERNAL_ERROR, print_exception=False) from None

    return wrapper  # type: ignore[return-value]


def register_gradio_endpoints(api: Api) -> None:
    """Inside a ``gr.Blocks`` context: one named endpoint per API function (typed, documented)."""
    for name in GRADIO_ENDPOINTS:
        gr.api(friendly(getattr(api, name)), api_name=name, concurrency_limit=None)


# --- REST face ---------------------------------------------------------------------------------


class RecommendRequest(BaseModel):
    """A new visitor: the movies they picked or rated, and their context."""

    history: list[int] = Field(
        default_factory=list, description="MovieLens movie ids, oldest first"
    )
    ratings: dict[int, float] | None = Field(None, description="optional {movie_id: stars}")
    time_of_day: str | None = Field(None, description="morning|afternoon|evening|night")
    device: str | None = Field(None, description="mobile|tablet|desktop|tv")
    k: int = 10
    genres: str | None = Field(None, description="comma-separated genres to keep")
    exclude_seen: bool = True
    model: str = "hybrid"


def rest_router(api: Api) -> APIRouter:
    """GET/POST routes under /api/ (FastAPI runs these sync handlers in its threadpool)."""
    router = APIRouter(prefix="/api", tags=["ContextFlix"])

    @router.get("/health")
    def health() -> dict:
        """Service status and which models the bundle has."""
        return api.health()

    @router.get("/users")
    def users(limit: int = 50, offset: int = 0) -> dict:
        """Data-set users, paged."""
        return api.users(limit, offset)

    @router.get("/movies")
    def movies(query: str = "", genre: str = "", limit: int = 20, offset: int = 0) -> dict:
        """Search the catalogue by title and/or genre."""
        return api.movies(query, genre, limit, offset)

    @router.get("/recommend")
    def recommend(
        user_id: int | None = None,
        time_of_day: str | None = Query(None, description="morning|afternoon|evening|night"),
        device: str | None = Query(None, description="mobile|tablet|desktop|tv"),
        k: int = 10,
        genres: str | None = Query(None, description="comma-separated"),
        exclude_seen: bool = True,
        model: str = Query(
            "hybrid",
            description="hybrid|hybrid_no_context|collaborative|content|sequential|popularity",
        ),
    ) -> dict:
        """Recommendations for a data-set user (omit user_id: popular in this context)."""
        return api.recommend(
            user_id=user_id,
            time_of_day=time_of_day,
            device=device,
            k=k,
            genres=genres,
            exclude_seen=exclude_seen,
            model=model,
        )

    @router.post("/recommend")
    def recommend_new_visitor(request: RecommendRequest = Body(...)) -> dict:  # noqa: B008
        """Recommendations for a new visitor from the movies they picked or rated."""
        return api.recommend(**request.model_dump())

    @router.get("/movie_genres")
    def movie_genres() -> dict:
        """Every genre of the catalogue."""
        return api.movie_genres()

    @router.get("/user_history")
    def user_history(user_id: int, limit: int = 50) -> dict:
        """A data-set user's ratings with their context, most recent first."""
        return api.user_history(user_id, limit)

    @router.get("/similar_movies")
    def similar_movies(item_id: int, k: int = 10) -> dict:
        """Movies similar to one movie, with why."""
        return api.similar_movies(item_id, k)

    @router.get("/user_preferences")
    def user_preferences(user_id: int) -> dict:
        """A data-set user's genre profile."""
        return api.user_preferences(user_id)

    @router.get("/ab_test_results")
    def ab_test_results() -> dict:
        """Offline A/B result and the live online test."""
        return api.ab_test_results()

    return router


def install_error_handlers(app: FastAPI) -> None:
    """4xx ``{"error": message}`` for bad input, 500 ``{"error": generic}`` otherwise."""

    @app.exception_handler(RecommenderError)
    async def user_error(_: Request, error: RecommenderError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', [])[1:]) or 'body'}: {e.get('msg')}"
            for e in error.errors()
        ]
        return JSONResponse({"error": "; ".join(problems) or "invalid request"}, status_code=422)

    @app.exception_handler(Exception)
    async def internal(request: Request, error: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=error)
        return JSONResponse({"error": INTERNAL_ERROR}, status_code=500)

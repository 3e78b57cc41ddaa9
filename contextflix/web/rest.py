"""The REST face of ``Api``: routes under /api/, their OpenAPI examples, the error handlers
and the HTTP layers (body limit, error shape, CORS, caching) in the order they must wrap.

FastAPI runs the sync handlers in its threadpool. Every answer is JSON; every failure is
``{"error": message}`` (see ``middleware.ErrorShape`` for the routes FastAPI does not own).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from contextflix.service.errors import RecommenderError
from contextflix.service.requests import (
    MAX_BATCH,
    MAX_STRING,
    Device,
    ModelName,
    RecommendRequest,
    TimeOfDay,
)
from contextflix.web.api import INTERNAL_ERROR, Api, Blank
from contextflix.web.limits import ApiConfig
from contextflix.web.middleware import ApiCors, BodyLimit, ErrorShape, HttpCaching, short

log = logging.getLogger(__name__)
ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class ErrorBody(BaseModel):
    """What every failure answers."""

    error: str = Field(examples=["Unknown user 999999: data-set users are 1-610"])


class BatchRequest(BaseModel):
    """Up to MAX_BATCH recommend requests; each is checked on its own."""

    model_config = ConfigDict(extra="forbid")

    requests: list[dict[str, Any]] = Field(
        max_length=MAX_BATCH, description=f"at most {MAX_BATCH} bodies of POST /api/recommend"
    )


VISITOR_EXAMPLE = {
    "history": [1, 260, 1196],
    "ratings": {"1": 4.5},
    "time_of_day": "night",
    "device": "mobile",
    "k": 5,
}
BATCH_EXAMPLE = {
    "requests": [
        {"user_id": 1, "time_of_day": "evening", "device": "tv", "k": 5},
        {"history": [1, 260], "time_of_day": "morning", "k": 3},
        {"user_id": 999999},
    ]
}
BATCH_ANSWER_EXAMPLE = {
    "results": [
        {"user_id": 1, "items": ["..."]},
        {"user_id": None, "items": ["..."]},
        {"error": "Unknown user 999999"},
    ]
}
GENRES_EXAMPLE = {"genres": ["Action", "Adventure", "Animation", "Children", "Comedy", "..."]}
HEALTH_EXAMPLE = {"status": "ok", "bundle": "contextflix-ml-latest-small", "models": {"...": True}}
AB_EXAMPLE = {"offline": {"ndcg@10": {"...": "..."}}, "online": {"A": {}, "B": {}, "...": "..."}}


def _answer(example: dict) -> dict:
    return {200: {"content": {"application/json": {"example": example}}}}


def rest_router(api: Api) -> APIRouter:
    """GET/POST routes under /api/; every one documents an example in the OpenAPI schema."""
    router = APIRouter(
        prefix="/api",
        tags=["ContextFlix"],
        responses={400: {"model": ErrorBody}, 413: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    )

    @router.get("/health", responses=_answer(HEALTH_EXAMPLE))
    def health() -> dict:
        """Service status and which models the bundle has."""
        return api.health()

    @router.get("/users")
    def users(limit: int = Query(50, examples=[5]), offset: int = Query(0, examples=[0])) -> dict:
        """Data-set users, paged."""
        return api.users(limit, offset)

    @router.get("/movies")
    def movies(
        query: str = Query("", max_length=MAX_STRING, examples=["matrix"]),
        genre: str = Query("", max_length=MAX_STRING, examples=["Sci-Fi"]),
        limit: int = Query(20, examples=[5]),
        offset: int = 0,
    ) -> dict:
        """Search the catalogue by title and/or genre."""
        return api.movies(query, genre, limit, offset)

    @router.get("/recommend")
    def recommend(
        user_id: int | None = Query(None, examples=[1]),
        time_of_day: Annotated[TimeOfDay | Blank | None, Query(examples=["evening"])] = None,
        device: Annotated[Device | Blank | None, Query(examples=["tv"])] = None,
        k: int = Query(10, examples=[5]),
        genres: str | None = Query(None, max_length=MAX_STRING, description="comma-separated"),
        exclude_seen: bool = True,
        model: ModelName = "hybrid",
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
    def recommend_posted(
        request: RecommendRequest = Body(  # noqa: B008
            ..., openapi_examples={"new visitor": {"value": VISITOR_EXAMPLE}}
        ),
    ) -> dict:
        """Recommendations for a new visitor from the movies they picked or rated (or, with
        user_id, for a data-set user)."""
        return api.recommend(**request.model_dump())

    @router.post("/recommend_batch", responses=_answer(BATCH_ANSWER_EXAMPLE))
    def recommend_batch(
        batch: BatchRequest = Body(  # noqa: B008
            ..., openapi_examples={"three requests": {"value": BATCH_EXAMPLE}}
        ),
    ) -> dict:
        """Up to 100 recommend requests in one call, scored together; each answer is its
        result or its own {"error": message}, in order."""
        return api.recommend_batch(batch.requests)

    @router.get("/movie_genres", responses=_answer(GENRES_EXAMPLE))
    def movie_genres() -> dict:
        """Every genre of the catalogue."""
        return api.movie_genres()

    @router.get("/user_history")
    def user_history(user_id: int = Query(examples=[1]), limit: int = Query(50, examples=[5])):
        """A data-set user's ratings with their context, most recent first."""
        return api.user_history(user_id, limit)

    @router.get("/similar_movies")
    def similar_movies(item_id: int = Query(examples=[1]), k: int = Query(10, examples=[5])):
        """Movies similar to one movie, with why."""
        return api.similar_movies(item_id, k)

    @router.get("/user_preferences")
    def user_preferences(user_id: int = Query(examples=[1])) -> dict:
        """A data-set user's genre profile."""
        return api.user_preferences(user_id)

    @router.get("/ab_test_results", responses=_answer(AB_EXAMPLE))
    def ab_test_results() -> dict:
        """Offline A/B result and the live online test."""
        return api.ab_test_results()

    routes: dict[str, set[str]] = {}
    for route in router.routes:
        routes.setdefault(route.path, set()).update(route.methods)  # type: ignore[attr-defined]

    @router.api_route("/{unknown:path}", methods=ANY_METHOD, include_in_schema=False)
    def not_here(request: Request) -> None:
        """404 for unknown /api/ paths, 405 (with Allow) for a known path's other methods."""
        allowed = sorted(routes.get(request.url.path, ()))
        if allowed:
            raise HTTPException(405, "Method Not Allowed", headers={"allow": ", ".join(allowed)})
        raise HTTPException(404, f"No such route: see /api/docs for the {len(routes)} routes")

    return router


def install_error_handlers(app: FastAPI) -> None:
    """4xx ``{"error": message}`` for bad input, 500 ``{"error": generic}`` otherwise."""

    @app.exception_handler(RecommenderError)
    async def user_error(_: Request, error: RecommenderError) -> JSONResponse:
        return JSONResponse({"error": short(str(error))}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = []
        for item in error.errors():
            where = ".".join(str(p) for p in item.get("loc", ())[1:]) or "body"
            message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
            problems.append(f"{where}: {message}")
        return JSONResponse({"error": short("; ".join(problems) or "invalid request")}, 422)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": short(str(error.detail))}, error.status_code, headers=error.headers
        )

    @app.exception_handler(Exception)
    async def internal(request: Request, error: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=error)
        return JSONResponse({"error": INTERNAL_ERROR}, status_code=500)


def bundle_identity(service: Any) -> str:
    """A digest of the served bundle's config (name, data set, training run, versions)."""
    bundle = getattr(service, "bundle", None)
    config = getattr(bundle, "config", None) or service.health()
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def install_http_layers(app: FastAPI, api: Api, config: ApiConfig) -> None:
    """Outermost first: error shape + version header, CORS (so errors are readable cross-
    origin), body limit, HTTP caching. Starlette wraps the last added outermost."""
    identities: dict[int, str] = {}

    def identity() -> str:
        service = api.service  # the app may swap in a new bundle while running
        if id(service) not in identities:
            identities.clear()
            identities[id(service)] = bundle_identity(service)
        return identities[id(service)]

    app.add_middleware(HttpCaching, bundle_identity=identity)
    app.add_middleware(
        BodyLimit,
        max_bytes=config.max_body_bytes,
        smaller={"/gradio_api/": config.gradio_max_body_bytes},
    )
    app.add_middleware(ApiCors, origins=config.cors_origins)
    app.add_middleware(ErrorShape)

"""The public API, twice: named Gradio endpoints (also served as MCP tools) and REST routes
under /api/ (``rest.py``), one implementation.

Recommendation requests are checked by the one request model,
``contextflix.service.requests.RecommendRequest`` (through the service), whichever face they
come from; the catalogue functions' arguments are checked against their signatures with the
same pydantic rules ("false" is False, Infinity is refused, 5 is not a search query). Both
faces return exactly the service's dicts, so a program gets the same JSON from
``gradio_client``, an MCP client and ``curl``. Bad input becomes ``gr.Error(message)`` on the
Gradio face and HTTP 4xx ``{"error": message}`` on REST; anything unexpected is logged with its
traceback and answered with a generic message, never the trace.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, TypeVar

import gradio as gr
from pydantic import ConfigDict, ValidationError, validate_call

from contextflix.service.errors import RecommenderError
from contextflix.service.requests import MAX_STRING, Device, ModelName, TimeOfDay
from contextflix.web.events import EventLog
from contextflix.web.middleware import short

log = logging.getLogger(__name__)

INTERNAL_ERROR = "Something went wrong on our side; the details are in the server log."
Blank = Literal[""]  # forms send "" for "not given"

USER_ERRORS: tuple[type[Exception], ...] = (RecommenderError,)
F = TypeVar("F", bound=Callable[..., Any])


class Service(Protocol):
    """What the web layer needs from ``contextflix.service.Recommender``."""

    def recommend(self, **kwargs: Any) -> dict: ...
    def recommend_batch(self, requests: list[dict]) -> list[dict]: ...
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
    def close(self) -> None: ...


def describe(error: ValidationError, names: Sequence[str] = ()) -> str:
    """``field: problem`` for each problem, never the offending value itself; ``names`` are
    the parameter names of positional arguments (pydantic reports their index)."""
    problems: dict[str, list[str]] = {}
    for item in error.errors(include_url=False, include_input=False):
        loc = [part for part in item.get("loc", ()) if part != "kwargs"]
        if loc and isinstance(loc[0], int) and loc[0] < len(names):
            loc[0] = names[loc[0]]
        # the field and list positions; not the names of union branches ("constrained-str")
        where = ".".join(str(p) for i, p in enumerate(loc) if i == 0 or isinstance(p, int))
        message = str(item.get("msg", "invalid"))
        if message not in problems.setdefault(where or "input", []):
            problems[where or "input"].append(message)
    text = "; ".join(f"{where}: {' or '.join(msgs)}" for where, msgs in problems.items())
    return short(text or "invalid input")


def checked(fn: F) -> F:
    """Validate the arguments against ``fn``'s type hints; bad ones raise RecommenderError."""
    validated = validate_call(
        fn,
        config=ConfigDict(allow_inf_nan=False, str_max_length=MAX_STRING),
        validate_return=False,
    )

    names = list(inspect.signature(fn).parameters)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return validated(*args, **kwargs)
        except ValidationError as error:
            if error.title not in (fn.__name__, fn.__qualname__):  # raised deeper down
                raise
            raise RecommenderError(describe(error, names)) from None

    return wrapper  # type: ignore[return-value]


def _blank_to_none(value: Any) -> Any:
    """Forms and query strings send "" for "not given"; the service wants None."""
    return None if value is None or (isinstance(value, str) and not value.strip()) else value


class Api:
    """The API's functions; each returns the JSON object the README's API section shows.

    The docstrings are what MCP clients and the Gradio API page show: keep the Args sections.
    """

    def __init__(self, service: Service, events: EventLog | None = None) -> None:
        self.service = service
        self.events = events

    def health(self) -> dict:
        """Service status: "ok" or "degraded" (a model is missing), the bundle and its models."""
        return self.service.health()

    @checked
    def users(self, limit: int = 50, offset: int = 0) -> dict:
        """Data-set users (MovieLens user ids) with their number of ratings, paged.

        Args:
            limit: how many users to return (1-1000).
            offset: how many users to skip (for paging).
        """
        return self.service.users(limit=limit, offset=offset)

    @checked
    def movies(self, query: str = "", genre: str = "", limit: int = 20, offset: int = 0) -> dict:
        """Search the movie catalogue by title (case and accents ignored) and/or one genre.

        Args:
            query: words of the title, e.g. "matrix" (empty: every movie).
            genre: keep only movies of this genre, e.g. "Comedy" (see movie_genres).
            limit: how many movies to return (1-1000).
            offset: how many movies to skip (for paging).
        """
        return self.service.movies(
            query=query or "", genre=_blank_to_none(genre), limit=limit, offset=offset
        )

    def recommend(
        self,
        user_id: int | None = None,
        history: list[int] | None = None,
        ratings: dict[int, float] | None = None,
        time_of_day: TimeOfDay | Blank | None = None,
        device: Device | Blank | None = None,
        k: int = 10,
        genres: str | list[str] | None = None,
        exclude_seen: bool = True,
        model: ModelName = "hybrid",
    ) -> dict:
        """Top-k movie recommendations, each with why it was picked.

        For a data-set user (user_id) or a new visitor (history, optional ratings), in a
        context; with neither, the movies most popular in that context.

        Args:
            user_id: a MovieLens user id (see users); leave out for a new visitor.
            history: a new visitor's movie ids, oldest first, e.g. [1, 260, 1196].
            ratings: optional stars (0.5-5) of movies in history, e.g. {"1": 4.5}.
            time_of_day: morning, afternoon, evening or night (omitted: unknown).
            device: mobile, tablet, desktop or tv (omitted: unknown).
            k: how many movies to return (1-100).
            genres: keep only these genres, comma-separated, e.g. "Comedy,Drama".
            exclude_seen: leave out movies the user has already rated.
            model: hybrid (default), hybrid_no_context, collaborative, content, sequential
                or popularity.
        """
        fields = {name: value for name, value in locals().items() if name != "self"}
        return self.service.recommend(**fields)  # checked there, by the one request model

    def recommend_batch(self, requests: list[dict]) -> dict:
        """Recommendations for many users or visitors in one call, scored together.

        Args:
            requests: up to 100 objects with the arguments of recommend (user_id or history,
                ratings, time_of_day, device, k, genres, exclude_seen, model).

        Returns {"results": [...]}: per request, in order, its recommend answer or
        {"error": message}; one bad request does not fail the others.
        """
        return {"results": self.service.recommend_batch(requests)}

    def movie_genres(self) -> dict:
        """Every genre of the catalogue, e.g. Action, Comedy, Drama."""
        return self.service.genres()

    @checked
    def user_history(self, user_id: int, limit: int = 50) -> dict:
        """A data-set user's ratings, most recent first, with the context of each.

        Args:
            user_id: a MovieLens user id (see users).
            limit: how many ratings to return (1-1000).
        """
        return self.service.history(user_id=user_id, limit=limit)

    @checked
    def similar_movies(self, item_id: int, k: int = 10) -> dict:
        """Movies like one movie, each with its similarity and why.

        Args:
            item_id: a MovieLens movie id (see movies), e.g. 1 for Toy Story.
            k: how many movies to return (1-100).
        """
        return self.service.similar(item_id=item_id, k=k)

    @checked
    def user_preferences(self, user_id: int) -> dict:
        """A data-set user's genre profile: share of their ratings, count and mean rating.

        Args:
            user_id: a MovieLens user id (see users).
        """
        return self.service.preferences(user_id=user_id)

    def ab_test_results(self) -> dict:
        """Offline A/B result of the bundle (hybrid without vs with context, paired) and the
        live online test of this app (per-arm click-through rate with 95% intervals)."""
        result = self.service.ab_results() or {}
        offline = result.get("offline", result)
        online = self.events.summary() if self.events is not None else result.get("online", {})
        return {"offline": offline, "online": online}


# --- Gradio face -------------------------------------------------------------------------------

GRADIO_ENDPOINTS = (
    "health",
    "users",
    "movies",
    "recommend",
    "recommend_batch",
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
            raise gr.Error(short(str(error)), print_exception=False) from None
        except Exception:
            log.exception("%s failed", getattr(fn, "__name__", "endpoint"))
            raise gr.Error(INTERNAL_ERROR, print_exception=False) from None

    return wrapper  # type: ignore[return-value]


def short_argument_errors(demo: gr.Blocks) -> None:
    """Replace Gradio's "didn't receive enough input values" check, whose message lists
    component objects (memory addresses) and echoes every value received, by a short one."""

    def validate_inputs(block_fn: Any, inputs: list) -> None:
        if len(inputs) < len(block_fn.inputs):
            try:
                names = list(inspect.signature(block_fn.fn).parameters)
            except (TypeError, ValueError):
                names = []
            listed = f" ({', '.join(names)})" if len(names) == len(block_fn.inputs) else ""
            raise gr.Error(
                short(
                    f"{block_fn.api_name or 'this function'} takes {len(block_fn.inputs)} "
                    f"values{listed}, got {len(inputs)}"
                ),
                print_exception=False,
            )

    demo.validate_inputs = validate_inputs  # type: ignore[method-assign]


def publish_only_the_api(demo: gr.Blocks) -> None:
    """Leave the page's own callbacks out of the API page and the MCP tools (they stay
    callable by the page): agents see the documented API functions only."""
    for block_fn in demo.fns.values():
        if block_fn.api_name not in GRADIO_ENDPOINTS and block_fn.api_visibility == "public":
            block_fn.api_visibility = "undocumented"


def register_gradio_endpoints(api: Api) -> None:
    """Inside a ``gr.Blocks`` context: one named endpoint per API function (typed, documented;
    also the app's MCP tools)."""
    for name in GRADIO_ENDPOINTS:
        gr.api(friendly(getattr(api, name)), api_name=name, concurrency_limit=None)

"""What the home page shows, decided without Gradio: which rows, their titles, which model
serves them, which of them are A/B impressions, and what the visitor's own reactions change.

The page (ui.py) only renders what these functions return, so everything a visitor sees can be
unit-tested against a fake API.

A/B arms are the models they claim to be: arm A is ``hybrid_no_context``, arm B ``hybrid``,
both given the visitor's context. Only rows the arm's model computed (the hero, top picks and
genre rows) count as A/B impressions; popularity and "similar" rows are the same in both arms.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from contextflix.web.posters import clean_title

ROW_K = 12
N_GENRE_ROWS = 3
N_ROWS = 2 + N_GENRE_ROWS + 1  # top picks, because you watched, genre rows, popular
NEW_VISITOR = "new"
ARM_MODELS = {"A": "hybrid_no_context", "B": "hybrid"}
LIKED, DISLIKED = 5.0, 1.0  # the ratings a thumbs up / down stands for
USER_HISTORY_LIMIT = 900  # a data-set user's history folded in with the session's reactions
DEVICE_WORDS = {
    "mobile": "on your phone",
    "tablet": "on a tablet",
    "desktop": "on desktop",
    "tv": "on TV",
}


class RowsApi(Protocol):
    """The part of ``contextflix.web.api.Api`` the rows need."""

    def recommend(self, **kwargs: Any) -> dict: ...
    def similar_movies(self, item_id: int, k: int = 10) -> dict: ...
    def user_history(self, user_id: int, limit: int = 50) -> dict: ...
    def user_preferences(self, user_id: int) -> dict: ...


@dataclass
class Row:
    title: str
    items: list[dict]
    ab: bool = False  # computed by the arm's model: its items are A/B impressions


@dataclass
class Home:
    hero: dict | None
    hero_label: str
    rows: list[Row] = field(default_factory=list)

    def impressions(self) -> list[tuple[int, int]]:
        """(item_id, rank) of what the arm's model put on the page: the hero and A/B rows."""
        shown = [(self.hero["item_id"], 1)] if self.hero and self.rows and self.rows[0].ab else []
        for row in self.rows:
            if row.ab:
                shown += [(it["item_id"], rank) for rank, it in enumerate(row.items, 1)]
        return shown


def arm_model(arm: str, personalised: bool = True) -> str:
    """The model that serves an arm's rows (popularity while no trained bundle is loaded)."""
    return ARM_MODELS.get(arm, "hybrid") if personalised else "popularity"


def context_title(time_of_day: str | None, device: str | None) -> str:
    """ "evening on TV": what the context-aware rows say they are tuned to."""
    parts = [time_of_day or "", DEVICE_WORDS.get(device or "", "")]
    return " ".join(p for p in parts if p)


# --- the visitor's taste: picks and reactions of this session -------------------------------


def reaction(movie: dict, how: str, stars: float | None = None) -> dict:
    """One entry of the visitor's taste list: a pick ("New here?"), a like, a dislike or stars."""
    rating = {"like": LIKED, "dislike": DISLIKED}.get(how, float(stars or LIKED))
    return {
        "item_id": int(movie["item_id"]),
        "rating": rating,
        "title": str(movie.get("title", "")),
        "genres": list(movie.get("genres") or []),
        "year": movie.get("year"),
        "how": how,
    }


def add_reaction(taste: list[dict], entry: dict) -> list[dict]:
    """The taste list with ``entry`` last (a new reaction to a movie replaces the old one)."""
    return [t for t in taste or [] if t["item_id"] != entry["item_id"]] + [entry]


def reaction_phrase(entry: dict) -> str:
    """ "you liked Alien a moment ago": how the page names the reaction that moved a movie."""
    title = clean_title(entry["title"])
    if entry["how"] == "dislike":
        return f"you turned down {title} a moment ago"
    if entry["how"] == "stars":
        return f"you rated {title} {entry['rating']:g}★ a moment ago"
    if entry["how"] == "pick":
        return f"you picked {title} a moment ago"
    return f"you liked {title} a moment ago"


def subject(api: RowsApi, profile: str, taste: list[dict]) -> dict:
    """recommend() arguments: a data-set user, the visitor's own history, or nobody.

    A data-set user with reactions this session becomes a history (their ratings, then the
    reactions) folded in exactly like a new visitor's picks.
    """
    taste = taste or []
    own = {t["item_id"] for t in taste}
    history: list[int] = []
    ratings: dict[str, float] = {}
    if profile and profile != NEW_VISITOR:
        if not taste:
            return {"user_id": int(profile)}
        past = api.user_history(int(profile), limit=USER_HISTORY_LIMIT)["items"][::-1]
        for h in past:
            if h["item_id"] not in own:
                history.append(h["item_id"])
                ratings[str(h["item_id"])] = float(h["rating"])
    for t in taste:
        history.append(t["item_id"])
        ratings[str(t["item_id"])] = float(t["rating"])
    return {"history": history, "ratings": ratings} if history else {}


def _seed_and_genres(api: RowsApi, profile: str, taste: list[dict]) -> tuple[dict | None, list]:
    """The movie "Because you watched" starts from, and the favourite genres."""
    liked = [t for t in taste or [] if t["rating"] >= 4]
    if liked:
        counts = Counter(g for t in liked for g in t["genres"] if g != "(no genres listed)")
        seed: dict | None = liked[-1]
        genres = [g for g, _ in counts.most_common(N_GENRE_ROWS)]
        if profile and profile != NEW_VISITOR and len(genres) < N_GENRE_ROWS:
            prefs = api.user_preferences(int(profile))["genres"]
            genres += [g["genre"] for g in prefs if g["genre"] not in genres]
        return seed, genres[:N_GENRE_ROWS]
    if profile and profile != NEW_VISITOR:
        recent = api.user_history(int(profile), limit=30)["items"]
        seed = next((h for h in recent if h.get("rating", 0) >= 4), recent[0] if recent else None)
        prefs = api.user_preferences(int(profile))["genres"]
        return seed, [g["genre"] for g in prefs[:N_GENRE_ROWS]]
    return None, []


def home(
    api: RowsApi,
    profile: str,
    taste: list[dict],
    arm: str,
    time_of_day: str | None,
    device: str | None,
    hidden: list[int] | None = None,
    personalised: bool = True,
) -> Home:
    """The hero and rows for a visitor in a context, served by their arm's model."""
    who = subject(api, profile, taste)
    model = arm_model(arm, personalised)
    context = {"time_of_day": time_of_day or None, "device": device or None}
    drop = set(hidden or [])
    where = context_title(time_of_day, device)
    suffix = f" - {where}" if where else ""

    def rec(**kwargs: Any) -> list[dict]:
        items = api.recommend(**who, **context, k=ROW_K + 1 + len(drop), model=model, **kwargs)
        return [it for it in items["items"] if it["item_id"] not in drop]

    rows: list[Row] = []
    top = rec()
    if personalised and taste:
        top = explain_moves(api, profile, taste, arm, context, top, drop)
    hero = top[0] if top else None
    if personalised:
        rows.append(Row(f"Top picks for you{suffix}", top[1 : ROW_K + 1], ab=True))
    if not who:  # nobody to personalise for yet: the arm's model serves its popular row
        rows = [Row(f"Popular right now{suffix}", top[1 : ROW_K + 1], ab=personalised)]
        return Home(hero=hero, hero_label=f"Most popular{suffix}", rows=rows)
    seed, genres = _seed_and_genres(api, profile, taste)
    if seed is not None:
        similar = api.similar_movies(seed["item_id"], k=ROW_K)["items"]
        rows.append(Row(f"Because you watched {clean_title(seed['title'])}", similar))
    for genre in genres:
        rows.append(Row(f"{genre} for you", rec(genres=genre)[:ROW_K], ab=personalised))
    popular = api.recommend(**context, k=ROW_K + 1, model="popularity")["items"]
    hero_id = hero["item_id"] if hero else None
    popular = [it for it in popular if it["item_id"] not in drop | {hero_id}][:ROW_K]
    rows.append(Row(f"Popular right now{suffix}", popular))
    label = f"#1 pick for you{suffix}" if personalised else f"Most popular{suffix}"
    return Home(hero=hero, hero_label=label, rows=[r for r in rows if r.items][:N_ROWS])


def explain_moves(
    api: RowsApi,
    profile: str,
    taste: list[dict],
    arm: str,
    context: dict,
    after: list[dict],
    drop: set[int],
) -> list[dict]:
    """Name the latest reaction on the movies it moved up: each item ranked higher with it than
    without it gets the reason "because you liked X a moment ago" first."""
    last = taste[-1]
    before_who = subject(api, profile, taste[:-1])
    before = api.recommend(**before_who, **context, k=ROW_K + 1 + len(drop), model=arm_model(arm))
    old_rank = {it["item_id"]: n for n, it in enumerate(before["items"])}
    phrase = reaction_phrase(last)
    out = []
    for n, item in enumerate(after):
        if n < old_rank.get(item["item_id"], len(old_rank) + 1):
            reason = {"source": "session", "text": f"because {phrase}", "weight": None}
            item = {
                **item,
                "explanation": f"Because {phrase}; {item.get('explanation') or ''}".rstrip("; "),
                "reasons": [reason, *(item.get("reasons") or [])],
            }
        out.append(item)
    return out

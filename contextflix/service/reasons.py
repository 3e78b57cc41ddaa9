"""Reasons: the sentences that phrase an explanation's evidence, and their thresholds.

Each ``*_reason`` builder takes only evidence computed elsewhere (service/explain.py) and
says no more than it shows; every evidence value is a plain JSON type.
"""

from __future__ import annotations

from collections.abc import Sequence

TIME_PHRASES = {
    "morning": "in the morning",
    "afternoon": "in the afternoon",
    "evening": "in the evening",
    "night": "at night",
}
DEVICE_PHRASES = {
    "mobile": "on mobile",
    "tablet": "on a tablet",
    "desktop": "on desktop",
    "tv": "on TV",
}

N_NEIGHBOURS = 50
"""Users "most like you" that the collaborative reason counts among."""
NEIGHBOUR_POOL = 20_000
"""Users searched for those most like you: the most active (every user of ml-100k and ml-1m,
an eighth of ML-25M's), so a reason costs the same at every size and quotes users whose
ratings say something."""
LIKED_RATING = 4.0
"""A rating at or above this is a "like" (4 or 5 stars; 4.0 and up on half-star scales)."""
MIN_CONTEXT_SUPPORT = 5
"""Interactions an item needs in the request's context cell before its lift is quoted; below
that, a ratio of tiny counts is noise ("3x more popular" from 1 view against 0.3 expected)."""
MIN_NOTABLE_LIFT = 1.2
"""A lift below this is not worth saying: the item is about as popular here as anywhere."""
MAX_GENRES = 2


def context_phrase(time_of_day: str | None, device: str | None) -> str:
    """ "in the evening on TV (device simulated)"; "" when the context is unknown.

    The device is simulated in every MovieLens bundle, so any phrase naming it says so.
    """
    parts = []
    if time_of_day is not None:
        parts.append(TIME_PHRASES[time_of_day])
    if device is not None:
        parts.append(DEVICE_PHRASES[device] + " (device simulated)")
    return " ".join(parts)


def join_names(names: Sequence[str]) -> str:
    """ "A", "A and B", "A, B and C"."""
    names = list(names)
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def collaborative_reason(
    liked_by: list[dict], n_neighbours: int, predicted_rating: float, searched: int | None = None
) -> dict:
    """How many of the nearest users (by MF user factors) rated the item LIKED_RATING or more;
    ``searched``: how many of the most active users were searched, None for all."""
    if liked_by:
        among = "" if searched is None else f" (of the {searched:,} most active)"
        text = (
            f"{len(liked_by)} of the {n_neighbours} users most like you{among} "
            f"rated it {LIKED_RATING:g} or higher"
        )
    else:
        text = f"people with taste like yours would rate it about {predicted_rating:.1f}"
    return {
        "source": "collaborative",
        "text": text,
        "evidence": {
            "neighbours": liked_by,
            "n_neighbours": n_neighbours,
            "searched": searched,
            "liked_rating": LIKED_RATING,
            "predicted_rating": round(predicted_rating, 2),
        },
    }


def content_reason(genre_deltas: dict[str, float], taste: dict[str, float], cosine: float) -> dict:
    """Genres of the item that raise its content score AND are in the user's genre profile."""
    named = {
        g: delta
        for g, delta in sorted(genre_deltas.items(), key=lambda kv: -kv[1])
        if delta > 0 and taste.get(g, 0.0) > 0
    }
    named = dict(list(named.items())[:MAX_GENRES])
    if named:
        text = f"matches your taste for {join_names(list(named))}"
    else:
        text = "similar in content to the movies you rated"
    return {
        "source": "content",
        "text": text,
        "evidence": {
            "genres": {g: round(d, 4) for g, d in named.items()},
            "your_genre_share": {g: round(taste[g], 4) for g in named},
            "cosine": round(cosine, 4),
        },
    }


def sequential_reason(item_id: int | None, title: str | None, log_prob_drop: float) -> dict:
    """The history item whose removal makes this item least likely next (sequential model)."""
    if item_id is None:
        text = "follows the order of what you watched"
    else:
        text = f"because you watched {title}"
    return {
        "source": "sequential",
        "text": text,
        "evidence": {
            "item_id": item_id,
            "title": title,
            "log_prob_drop": round(log_prob_drop, 4),
        },
    }


def similar_text(source: str, shared_genres: list[str], co_likers: int) -> str:
    """Why two movies are similar, from the source that found them and what they share."""
    parts = []
    if source == "collaborative":
        parts.append(
            f"liked by the same people ({co_likers} rated both {LIKED_RATING:g} or higher)"
            if co_likers
            else "liked by the same kind of viewer"
        )
    elif source == "content":
        parts.append("similar in content")
    if shared_genres:
        parts.append(f"both {join_names(shared_genres)}")
    return "; ".join(parts) or "similar"


def popularity_reason(
    lift: float,
    cell_count: float,
    n_ratings: int,
    time_of_day: str | None,
    device: str | None,
    cold_start: bool = False,
) -> dict:
    """Context lift when it is notable and well supported; plain popularity otherwise."""
    phrase = context_phrase(time_of_day, device)
    quotable = bool(phrase) and cell_count >= MIN_CONTEXT_SUPPORT and lift >= MIN_NOTABLE_LIFT
    if cold_start:
        text = f"popular {phrase or 'right now'} — we don't know your taste yet"
    elif quotable:
        text = f"{lift:.1f}x more popular {phrase}"
    else:
        text = f"widely watched ({n_ratings} ratings)"
    return {
        "source": "popularity",
        "text": text,
        "evidence": {
            "time_of_day": time_of_day,
            "device": device,
            "device_simulated": device is not None,
            "lift": round(lift, 3) if phrase else None,
            "context_count": int(cell_count),
            "min_support": MIN_CONTEXT_SUPPORT,
            "n_ratings": int(n_ratings),
        },
    }

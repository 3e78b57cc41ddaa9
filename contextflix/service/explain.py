"""Explanations: the evidence behind each recommended item, and the reasons that phrase it.

:class:`Explainer` computes the evidence for a request's top items from what the scoring pass
kept (``Scored``: raw scores, MF user vectors, content profiles) plus batched occlusion passes:
the nearest users by MF factors who liked the item; how much each of the item's genres raises
its content score; which history item, removed, lowers THIS item's sequential score the most;
the item's popularity in the request's context. The ``*_reason`` builders only phrase that
evidence, so a reason cannot claim more than its evidence shows. Every evidence value is a
plain JSON type.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from contextflix.data.context import DEVICES, TIMES_OF_DAY, UNKNOWN
from contextflix.models.scoring import BLOCK, Requests, Scored, Scorer, sequential_scores
from contextflix.models.sequential import SequentialRecommender

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
LIKED_RATING = 4.0
"""A rating at or above this is a "like" (4 or 5 stars; 4.0 and up on half-star scales)."""
MIN_CONTEXT_SUPPORT = 5
"""Interactions an item needs in the request's context cell before its lift is quoted; below
that, a ratio of tiny counts is noise ("3x more popular" from 1 view against 0.3 expected)."""
MIN_NOTABLE_LIFT = 1.2
"""A lift below this is not worth saying: the item is about as popular here as anywhere."""
MAX_GENRES = 2
OCCLUSION_WINDOW = BLOCK - 1
"""Most recent history items the sequential reason tries removing: with the request itself,
they fill one scoring block, so the reason costs almost nothing. A next-item model leans on
the most recent items; an older one is never named."""


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


def collaborative_reason(liked_by: list[dict], n_neighbours: int, predicted_rating: float) -> dict:
    """How many of the nearest users (by MF user factors) rated the item LIKED_RATING or more."""
    if liked_by:
        text = (
            f"{len(liked_by)} of the {n_neighbours} users most like you "
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


# --- evidence ---------------------------------------------------------------------------------


def occlusion_variants(request: Requests) -> tuple[Requests, list[int]] | None:
    """The one-row ``request`` with, in turn, each of its OCCLUSION_WINDOW most recent history
    items removed (older ones slide into the model's window, as if never watched), and the
    removed items (item_idx); None without history.

    The variants are scored in the same pass as the request itself (for a single request they
    fill its scoring block, which the Scorer would otherwise pad), so occlusion is nearly free.
    """
    present = request.items[0] > 0
    history = {name: getattr(request, name)[0][present] for name in _HISTORY_FIELDS}
    n = len(history["items"])
    if n == 0:
        return None
    removed = torch.arange(max(0, n - OCCLUSION_WINDOW), n)
    kept = torch.arange(n - 1)[None, :]
    kept = kept + (kept >= removed[:, None]).long()  # [variants, n - 1]: all but one
    variants = Requests(
        user=request.user.expand(len(removed)),
        **{name: values[kept] for name, values in history.items()},
        target_time_of_day=request.target_time_of_day.expand(len(removed)),
        target_device=request.target_device.expand(len(removed)),
    )
    return variants, (history["items"][removed] - 1).tolist()


def occlusion_drops(
    scores: torch.Tensor, variant_scores: torch.Tensor, removed: list[int], items: Sequence[int]
) -> list[tuple[int | None, float]]:
    """Per item: (removed item_idx that lowers its log-probability most, that drop).

    Log-probabilities, not raw scores: a removal that shifts every item's score alike says
    nothing about THIS item. (None, 0.0) when no removal makes the item less likely.
    """
    items = list(items)
    log_p = scores.log_softmax(-1)[items]
    drops = log_p[None] - variant_scores.log_softmax(-1)[:, items]  # [removed, items]
    best = drops.max(0)
    return [
        (removed[j], value) if value > 0 else (None, 0.0)
        for value, j in zip(best.values.tolist(), best.indices.tolist(), strict=True)
    ]


@torch.inference_mode()
def sequential_occlusion(
    model: SequentialRecommender, request: Requests, items: Sequence[int]
) -> list[tuple[int | None, float]]:
    """occlusion_drops of ``items`` for a one-row request, scored by ``model`` alone."""
    found = occlusion_variants(request)
    if found is None:
        return [(None, 0.0)] * len(items)
    variants, removed = found
    scores = sequential_scores(model, Requests.concat([request, variants]))
    return occlusion_drops(scores[0], scores[1:], removed, items)


_HISTORY_FIELDS = ("items", "ratings", "time_of_day", "device")


class Explainer:
    """Reasons for recommended items, from the models and the catalogue of one bundle."""

    def __init__(self, scorer: Scorer, catalog) -> None:
        self.scorer, self.catalog = scorer, catalog
        self.models = scorer.models
        mf, content = self.models.collaborative, self.models.content
        self.user_unit = F.normalize(mf.user_factors.weight, dim=1) if mf is not None else None
        if content is not None:
            self._prepare_content(content)
        with torch.inference_mode():  # [time of day, device, item] context lift, every cell
            popularity = self.models.popularity
            tod, dev = torch.meshgrid(
                torch.arange(popularity.counts.shape[0]),
                torch.arange(popularity.counts.shape[1]),
                indexing="ij",
            )
            lift = popularity.lift(tod.flatten(), dev.flatten())
            self._lift = lift.reshape(*tod.shape, -1)

    @torch.inference_mode()
    def _prepare_content(self, content) -> None:
        """Each item's content encoding and prior with one of its genres switched off, once:
        the occlusion deltas of a request are then dot products with its profile."""
        slots = [j for j, _ in content.genre_slots]
        active = (content.features[:, slots] > 0).numpy()
        self.content_genres = [[content.genre_slots[n] for n in np.flatnonzero(r)] for r in active]
        rows = [(item, j) for item, pairs in enumerate(self.content_genres) for j, _ in pairs]
        variants = content.features[[item for item, _ in rows]].clone()
        variants[torch.arange(len(rows)), torch.tensor([j for _, j in rows], dtype=torch.long)] = 0
        self._variant_encodings = content.encode(variants)
        self._variant_prior = content.item_prior(variants)
        self._variant_start = np.cumsum([0] + [len(p) for p in self.content_genres])
        self._content_prior = content.item_prior(content.features)

    @torch.inference_mode()
    def reasons(
        self,
        request: Requests,
        scored: Scored,
        row: int,
        top: list[int],
        cold: bool,
        occlusion: tuple[torch.Tensor, list[int]] | None = None,
    ) -> dict[str, list[dict]]:
        """{source: one reason per top item} for every source that contributed.

        ``occlusion``: the sequential scores of the request's occlusion variants and the items
        they remove (scored with the request, see occlusion_variants).
        """
        out: dict[str, list[dict]] = {}
        if "popularity" in scored.contributions:
            out["popularity"] = self._popularity(request, top, cold)
        if "collaborative" in scored.contributions:
            out["collaborative"] = self._collaborative(request, scored, row, top)
        if "content" in scored.contributions:
            out["content"] = self._content(request, scored.profiles[row], top)
        if "sequential" in scored.contributions:
            if occlusion is None:
                found = [(None, 0.0)] * len(top)
            else:
                found = occlusion_drops(scored.raw["sequential"][row], *occlusion, top)
            out["sequential"] = [
                sequential_reason(
                    None if item is None else int(self.catalog.item_ids[item]),
                    None if item is None else self.catalog.titles[item],
                    drop,
                )
                for item, drop in found
            ]
        return out

    def _popularity(self, request: Requests, top: list[int], cold: bool) -> list[dict]:
        tod, dev = int(request.target_time_of_day[0]), int(request.target_device[0])
        tod_name = None if tod == UNKNOWN else TIMES_OF_DAY[tod]
        dev_name = None if dev == UNKNOWN else DEVICES[dev]
        lift = self._lift[tod, dev, top].tolist()
        cell = self.models.popularity.counts[tod, dev, top].tolist()
        n_ratings = self.catalog.n_ratings[top].tolist()
        return [
            popularity_reason(lift[n], cell[n], n_ratings[n], tod_name, dev_name, cold)
            for n in range(len(top))
        ]

    def _collaborative(self, request: Requests, scored: Scored, row: int, top: list[int]) -> list:
        """Nearest users by MF factors (to the trained or folded-in vector) who rated each
        item LIKED_RATING or more."""
        catalog = self.catalog
        own = int(request.user[0])
        sims = self.user_unit @ F.normalize(scored.user_vectors[row], dim=0)
        if own >= 0:
            sims[own] = float("-inf")  # never one's own neighbour
        k = min(N_NEIGHBOURS, catalog.n_users - (1 if own >= 0 else 0))
        neighbours = sims.topk(k).indices.numpy()
        keys = neighbours[:, None] * catalog.n_items + np.asarray(top)[None, :]
        pos = np.searchsorted(catalog.pair_key, keys).clip(max=len(catalog.pair_key) - 1)
        rating = np.where(catalog.pair_key[pos] == keys, catalog.pair_rating[pos], np.nan)
        low, high = catalog.rating_range
        liked = rating >= LIKED_RATING  # NaN (not rated) compares False
        out = []
        for col, item in enumerate(top):
            rows = np.flatnonzero(liked[:, col])
            liked_by = [
                {"user_id": u, "rating": r}
                for u, r in zip(
                    catalog.user_ids[neighbours[rows]].tolist(),
                    rating[rows, col].tolist(),
                    strict=True,
                )
            ]
            predicted = float(scored.raw["collaborative"][row, item].clamp(low, high))
            out.append(collaborative_reason(liked_by, len(neighbours), predicted))
        return out

    def _content(self, request: Requests, profile: torch.Tensor, top: list[int]) -> list[dict]:
        """Occlusion deltas of the content score (ContentModel.genre_contributions' formula):
        the item's score for this profile minus its score with one genre switched off."""
        content = self.models.content
        present = request.items[0] > 0
        taste = content.genre_profile(request.items[0][present] - 1, request.ratings[0][present])
        scale = content.log_scale.exp()
        cosine = self.scorer.encodings[top] @ profile
        scores = (scale * cosine + self._content_prior[top]).tolist()
        spans = [range(self._variant_start[i], self._variant_start[i + 1]) for i in top]
        rows = torch.tensor([r for span in spans for r in span], dtype=torch.long)
        variants = scale * (self._variant_encodings[rows] @ profile) + self._variant_prior[rows]
        values, out, start = variants.tolist(), [], 0
        for n, item in enumerate(top):
            genres = [g for _, g in self.content_genres[item]]
            chunk = values[start : start + len(genres)]
            start += len(genres)
            deltas = {g: scores[n] - v for g, v in zip(genres, chunk, strict=True)}
            out.append(content_reason(deltas, taste, float(cosine[n])))
        return out

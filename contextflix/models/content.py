"""Content-based model: items encoded from their metadata, users as a profile of what they rated.

Item features (built once by :func:`item_features`, kept in a buffer so serving needs only the
weights and :meth:`ContentModel.config`): genre multi-hot, the release year (standardised, plus
decade one-hot and an "unknown year" flag) and, where the release has them (ml-latest-small),
a multi-hot over the ``n_tags`` tags given to the most movies, and optionally ``popularity``
(:func:`popularity_feature`: how often the movie was rated in training, which genres and year
cannot tell apart within a genre). An MLP maps them to ``dim`` dimensions.

User profile = sum_j w_j e_j over the items the user rated, with
``w_j = offset + (r_j - mean of the user's ratings)``. Centring on the user's own mean
separates taste from rating habit (a harsh rater's 3 stars is a like, a generous rater's 3 is
a dislike); the positive ``offset`` keeps every rated item counting as interest (having chosen
to watch a film says something even when the rating is middling, which is what protocol S's
"next rated item" targets reward) and keeps the profile defined for a visitor who gives only
5-star "liked" movies (all centred weights would be 0). Items rated far below the user's mean
get a negative weight and push the profile away.

score(u, i) = cosine(profile_u, e_i) * scale + prior(x_i); ``scale`` is a learned inverse
temperature and ``prior`` an optional linear function of the item's own features (a
content-only popularity prior, e.g. "recent Dramas get watched more"). Both depend only on the
item's features, so items nobody rated (cold start) score like any other, and a visitor known
only by a few liked movies gets a profile from :meth:`ContentModel.profile_from`.

Explanations (:meth:`ContentModel.genre_contributions`) are occlusion deltas of that very
score: how much the item's score for this profile drops when one of its genres is switched off
in its feature vector. They sum up what the model computes, not a separate heuristic.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

GENRE_PREFIX = "genre:"
TAG_PREFIX = "tag:"
DECADE_PREFIX = "decade:"
POPULARITY = "popularity"


def _genre_list(movies: pd.DataFrame) -> list[str]:
    return sorted(
        {g for genres in movies["genres"] for g in genres if g and g != "(no genres listed)"}
    )


def item_features(
    movies: pd.DataFrame,
    n_tags: int = 200,
    decades: Sequence[int] = tuple(range(1920, 2030, 10)),
) -> tuple[torch.Tensor, list[str]]:
    """([n_items, n_features] float tensor, feature names) in the row order of ``movies``.

    Names: ``genre:<g>``, ``year`` (standardised), ``year:unknown``, ``decade:<d>`` (the
    first decade also takes everything earlier, the last everything later) and, when the
    frame has a ``tags`` column and ``n_tags > 0``, ``tag:<t>`` for the tags given to the most
    movies (lower-cased; ties broken alphabetically).
    """
    n = len(movies)
    genres = _genre_list(movies)
    genre_index = {g: j for j, g in enumerate(genres)}
    genre_block = np.zeros((n, len(genres)), dtype=np.float32)
    for row, movie_genres in enumerate(movies["genres"]):
        for g in movie_genres:
            if g in genre_index:
                genre_block[row, genre_index[g]] = 1.0

    year = pd.to_numeric(movies.get("year", pd.Series([np.nan] * n)), errors="coerce").to_numpy(
        dtype=np.float64
    )
    known = np.isfinite(year)
    centre = float(np.median(year[known])) if known.any() else 0.0
    spread = float(year[known].std()) if known.sum() > 1 else 1.0
    spread = spread or 1.0
    year_std = np.where(known, (np.nan_to_num(year, nan=centre) - centre) / spread, 0.0)
    decade_block = np.zeros((n, len(decades)), dtype=np.float32)
    slot = np.clip(
        np.searchsorted(decades, np.nan_to_num(year, nan=0.0), side="right") - 1, 0, None
    )
    decade_block[np.flatnonzero(known), slot[known]] = 1.0
    year_block = np.stack([year_std, (~known).astype(np.float64)], axis=1).astype(np.float32)

    blocks = [genre_block, year_block, decade_block]
    names = [GENRE_PREFIX + g for g in genres] + ["year", "year:unknown"]
    names += [f"{DECADE_PREFIX}{d}s" for d in decades]

    if "tags" in movies.columns and n_tags > 0:
        tag_lists = [
            sorted({str(t).strip().lower() for t in tags if str(t).strip()})
            for tags in movies["tags"]
        ]
        counts = Counter(t for tags in tag_lists for t in tags)
        top = sorted(counts, key=lambda t: (-counts[t], t))[:n_tags]
        tag_index = {t: j for j, t in enumerate(top)}
        tag_block = np.zeros((n, len(top)), dtype=np.float32)
        for row, tags in enumerate(tag_lists):
            for t in tags:
                if t in tag_index:
                    tag_block[row, tag_index[t]] = 1.0
        blocks.append(tag_block)
        names += [TAG_PREFIX + t for t in top]

    return torch.from_numpy(np.concatenate(blocks, axis=1)), names


def popularity_feature(train_counts: np.ndarray) -> torch.Tensor:
    """[n_items, 1] standardised log(1 + number of training ratings) of each movie.

    Counts must come from the training ratings only (validation and test targets would leak
    into the ranking). A movie nobody rated gets log(1) standardised like any other, so cold
    start still scores.
    """
    x = np.log1p(np.asarray(train_counts, dtype=np.float64))
    spread = float(x.std()) or 1.0
    return torch.from_numpy(((x - x.mean()) / spread).astype(np.float32))[:, None]


def profile_weights(ratings: torch.Tensor, offset: float = 1.0) -> torch.Tensor:
    """Weights of one user's rated items: ``offset + (r - mean(r))``."""
    ratings = torch.as_tensor(ratings, dtype=torch.float32)
    if ratings.numel() == 0:
        return ratings
    return offset + (ratings - ratings.mean())


class ContentModel(nn.Module):
    def __init__(
        self,
        n_items: int,
        feature_names: Sequence[str],
        dim: int = 64,
        hidden: int = 256,
        dropout: float = 0.1,
        use_prior: bool = True,
        weight_offset: float = 1.0,
        scale: float = 10.0,
    ) -> None:
        super().__init__()
        self.n_items = n_items
        self.feature_names = list(feature_names)
        self.dim, self.hidden, self.dropout_p = dim, hidden, dropout
        self.use_prior, self.weight_offset = use_prior, weight_offset
        n_features = len(self.feature_names)
        self.register_buffer("features", torch.zeros(n_items, n_features))
        self.encoder = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(n_features, hidden),
            nn.GELU(),
            nn.Linear(hidden, dim),
        )
        self.prior = nn.Linear(n_features, 1) if use_prior else None
        if self.prior is not None:
            nn.init.zeros_(self.prior.weight)
            nn.init.zeros_(self.prior.bias)
        self.log_scale = nn.Parameter(torch.tensor(float(np.log(scale))))
        self.genre_slots = [
            (j, name[len(GENRE_PREFIX) :])
            for j, name in enumerate(self.feature_names)
            if name.startswith(GENRE_PREFIX)
        ]

    @classmethod
    def from_movies(
        cls,
        movies: pd.DataFrame,
        n_tags: int = 200,
        train_counts: np.ndarray | None = None,
        **kwargs,
    ) -> ContentModel:
        """A model over ``movies``' features; with ``train_counts`` (training ratings per
        movie, in row order) the ``popularity`` feature is appended."""
        features, names = item_features(movies, n_tags=n_tags)
        if train_counts is not None:
            if len(train_counts) != len(movies):
                raise ValueError(f"{len(train_counts)} train counts for {len(movies)} movies")
            features = torch.cat([features, popularity_feature(train_counts)], dim=1)
            names = [*names, POPULARITY]
        model = cls(len(movies), names, **kwargs)
        model.features.copy_(features)
        return model

    def config(self) -> dict:
        """Constructor arguments as JSON-able values (the features travel in the weights)."""
        return {
            "n_items": self.n_items,
            "feature_names": self.feature_names,
            "dim": self.dim,
            "hidden": self.hidden,
            "dropout": self.dropout_p,
            "use_prior": self.use_prior,
            "weight_offset": self.weight_offset,
        }

    @property
    def genres(self) -> list[str]:
        return [g for _, g in self.genre_slots]

    # --- encodings and scores -----------------------------------------------------------

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """[N, dim] L2-normalised encodings of feature rows."""
        return F.normalize(self.encoder(features), dim=-1)

    def encode_items(self) -> torch.Tensor:
        return self.encode(self.features)

    def item_prior(self, features: torch.Tensor) -> torch.Tensor:
        if self.prior is None:
            return torch.zeros(features.shape[:-1], device=features.device)
        return self.prior(features).squeeze(-1)

    def profiles(
        self, weights: torch.Tensor, encodings: torch.Tensor | None = None
    ) -> torch.Tensor:
        """[B, dim] unit profiles from [B, n_items] item weights (0 = not rated)."""
        encodings = self.encode_items() if encodings is None else encodings
        return F.normalize(weights @ encodings, dim=-1)

    def score_profiles(
        self, profiles: torch.Tensor, encodings: torch.Tensor | None = None
    ) -> torch.Tensor:
        """[B, n_items] scores = scale * cosine(profile, item) + prior(item)."""
        encodings = self.encode_items() if encodings is None else encodings
        cos = F.normalize(profiles, dim=-1) @ encodings.T
        return self.log_scale.exp() * cos + self.item_prior(self.features)

    def profile_from(self, items: Sequence[int] | torch.Tensor, ratings) -> torch.Tensor:
        """[dim] unit profile of a visitor from the items they rated and their ratings.

        A visitor who only lists liked movies can pass the same rating (e.g. 5) for each.
        """
        items = torch.as_tensor(items, dtype=torch.long).reshape(-1)
        ratings = torch.as_tensor(ratings, dtype=torch.float32).reshape(-1)
        if items.shape != ratings.shape:
            raise ValueError(f"{items.numel()} items but {ratings.numel()} ratings")
        if items.numel() and (items.min() < 0 or items.max() >= self.n_items):
            raise ValueError(f"item indices must be in [0, {self.n_items})")
        w = profile_weights(ratings, self.weight_offset)
        encodings = self.encode(self.features[items])
        return F.normalize(w @ encodings, dim=-1)

    @torch.no_grad()
    def score_items(self, items: Sequence[int] | torch.Tensor, ratings) -> torch.Tensor:
        """[n_items] scores of every item for a visitor (eval mode recommended)."""
        return self.score_profiles(self.profile_from(items, ratings)[None])[0]

    # --- explanations -------------------------------------------------------------------

    @torch.no_grad()
    def genre_profile(self, items: Sequence[int] | torch.Tensor, ratings) -> dict[str, float]:
        """Weight-averaged genre mix of the rated items (the profile's input, per genre)."""
        items = torch.as_tensor(items, dtype=torch.long).reshape(-1)
        w = profile_weights(
            torch.as_tensor(ratings, dtype=torch.float32).reshape(-1), self.weight_offset
        )
        if items.numel() == 0:
            return {}
        mix = w @ self.features[items] / w.abs().sum().clamp_min(1e-12)
        return {g: float(mix[j]) for j, g in self.genre_slots if float(mix[j]) != 0.0}

    @torch.no_grad()
    def genre_contributions(
        self, profile_items: Sequence[int] | torch.Tensor, ratings, item: int
    ) -> dict[str, float]:
        """{genre of ``item``: score drop when that genre is switched off}, largest first.

        Occlusion of the model's own score for this visitor's profile: positive means the
        genre raises the item's score (cosine and prior together). Only the item's genres.
        """
        profile = self.profile_from(profile_items, ratings)
        x = self.features[item]
        active = [(j, g) for j, g in self.genre_slots if x[j] > 0]
        if not active:
            return {}
        variants = x.repeat(len(active) + 1, 1)
        for row, (j, _) in enumerate(active, start=1):
            variants[row, j] = 0.0
        cos = self.encode(variants) @ profile
        scores = self.log_scale.exp() * cos + self.item_prior(variants)
        deltas = {g: float(scores[0] - scores[row]) for row, (_, g) in enumerate(active, 1)}
        return dict(sorted(deltas.items(), key=lambda kv: -kv[1]))

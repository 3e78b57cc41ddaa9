"""Content model: features, genre-consistent ranking incl. cold start, explanations, CLI."""

from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from contextflix.bundle import export_bundle, load_bundle
from contextflix.models.content import (
    POPULARITY,
    ContentModel,
    item_features,
    popularity_feature,
    profile_weights,
)
from contextflix.models.scoring import BaseModels, Scorer
from tests.test_bundle import _requests as bundle_requests
from tests.test_bundle import tiny_bundle
from training.content import ContentModule, UserWeights
from training.data import RatingsDataModule
from training.losses import sample_negatives, sampled_cross_entropy

ROOT = Path(__file__).resolve().parents[1]
GENRES = ["Horror", "Comedy", "Romance", "Sci-Fi"]


def catalogue(n_per_genre=15, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for g, genre in enumerate(GENRES):
        for k in range(n_per_genre):
            extra = [GENRES[(g + 1) % 4]] if k % 5 == 0 else []
            rows.append(
                {
                    "item_id": len(rows) + 1,
                    "title": f"{genre} {k}",
                    "year": int(rng.integers(1960, 2015)),
                    "genres": [genre, *extra],
                    "tags": [f"{genre.lower()} tag"] if k % 2 else [],
                }
            )
    return pd.DataFrame(rows)


def test_item_features_names_and_values():
    movies = catalogue()
    x, names = item_features(movies, n_tags=3)
    assert x.shape == (len(movies), len(names))
    assert [n for n in names if n.startswith("genre:")] == [f"genre:{g}" for g in sorted(GENRES)]
    assert sum(n.startswith("tag:") for n in names) == 3
    assert x[0, names.index("genre:Horror")] == 1 and x[0, names.index("genre:Comedy")] == 1
    assert torch.all(x[:, [j for j, n in enumerate(names) if n.startswith("decade:")]].sum(1) == 1)
    no_tags, names2 = item_features(movies.drop(columns="tags"))
    assert not any(n.startswith("tag:") for n in names2) and no_tags.shape[0] == len(movies)


def test_profile_weights_centre_on_the_user_mean():
    w = profile_weights(torch.tensor([5.0, 3.0, 1.0]), offset=1.0)
    assert torch.allclose(w, torch.tensor([3.0, 1.0, -1.0]))
    assert torch.allclose(profile_weights(torch.tensor([5.0, 5.0])), torch.ones(2))


def test_user_weights_are_sparse_rows_centred_on_each_user() -> None:
    users, items = np.array([0, 0, 2, 2, 2]), np.array([3, 1, 0, 4, 1])
    ratings = np.array([5.0, 3.0, 4.0, 4.0, 1.0])
    weights = UserWeights(users, items, ratings, n_users=3, n_items=5, offset=1.0)
    assert weights.matrix.nnz == 5  # memory follows the ratings, not users x items
    dense = weights.dense(torch.tensor([2, 1, 0]))
    expected = torch.zeros(3, 5)
    expected[0, [0, 4, 1]] = torch.tensor([2.0, 2.0, -1.0])  # user 2: mean 3
    expected[2, [3, 1]] = torch.tensor([2.0, 1e-6])  # user 0: mean 4; 0 would read "unrated"
    assert torch.allclose(dense, expected)


def train_genre_fans(negatives: int = 0):
    """Each user watches (and rates highly) one genre only; the last item is never rated."""
    torch.manual_seed(0)
    movies = catalogue()
    genre_of = np.array([GENRES.index(g[0]) for g in movies["genres"]])
    cold = len(movies) - 1  # a Sci-Fi film nobody rated
    rng = np.random.default_rng(0)
    users, items, ratings = [], [], []
    for u in range(80):
        pool = np.flatnonzero((genre_of == u % 4) & (np.arange(len(movies)) != cold))
        for i in rng.choice(pool, size=8, replace=False):
            users.append(u)
            items.append(i)
            ratings.append(float(rng.integers(3, 6)))
    users, items, ratings = map(np.array, (users, items, ratings))
    module = ContentModule(
        80, len(movies), n_tags=5, dim=16, hidden=32, dropout=0.0, lr=0.01, negatives=negatives
    )
    weights = UserWeights(users, items, ratings, 80, len(movies), 1.0)
    module.build(movies, {"train": weights, "test": weights})
    opt = torch.optim.Adam(module.parameters(), lr=0.01)
    batch = {"user": torch.as_tensor(users), "item": torch.as_tensor(items)}
    for _ in range(150):
        loss = module.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return module.model.eval(), movies, genre_of, cold


@pytest.fixture(scope="module")
def trained():
    return train_genre_fans()


@pytest.fixture(scope="module")
def trained_sampled():
    """The same fans, fitted with the sampled softmax (16 of the 60 movies a step)."""
    return train_genre_fans(negatives=16)


@pytest.mark.parametrize("fit", ["trained", "trained_sampled"])
def test_one_genre_fan_gets_that_genre_first_including_cold_start(fit, request):
    model, _movies, genre_of, cold = request.getfixturevalue(fit)
    scifi = GENRES.index("Sci-Fi")
    liked = np.flatnonzero(genre_of == scifi)[:3]
    scores = model.score_items(liked, [5.0, 5.0, 5.0])
    assert torch.isfinite(scores).all()
    n_scifi = int((genre_of == scifi).sum())
    top = scores.argsort(descending=True)[:n_scifi].numpy()
    assert (genre_of[top] == scifi).mean() >= 0.9
    rank_of_cold = int((scores > scores[cold]).sum()) + 1
    assert rank_of_cold <= n_scifi, rank_of_cold


def test_genre_contributions_point_at_the_shared_genre(trained):
    model, movies, genre_of, _ = trained
    horror = GENRES.index("Horror")
    liked = np.flatnonzero(genre_of == horror)[1:4]  # pure Horror films
    # The Sci-Fi block's first film is Sci-Fi + Horror: for a Horror fan, Horror carries it.
    target = int(np.flatnonzero(genre_of == GENRES.index("Sci-Fi"))[0])  # Sci-Fi + Horror
    assert set(movies["genres"][target]) == {"Sci-Fi", "Horror"}
    contrib = model.genre_contributions(liked, [5.0, 4.0, 5.0], target)
    assert set(contrib) == {"Sci-Fi", "Horror"}
    assert next(iter(contrib)) == "Horror" and contrib["Horror"] > 0
    profile = model.genre_profile(liked, [5.0, 4.0, 5.0])
    assert max(profile, key=profile.get) == "Horror"


def test_sampled_loss_leaves_the_users_other_movies_out_of_the_negatives():
    movies = catalogue(n_per_genre=5)
    movies.loc[[1, 2], "genres"] = pd.Series([["Western"], ["Western"]], index=[1, 2])
    users, items = np.array([0, 0, 0, 1]), np.array([0, 1, 2, 3])
    weights = UserWeights(users, items, np.array([5.0, 4.0, 3.0, 2.0]), 2, len(movies), 1.0)
    module = ContentModule(2, len(movies), n_tags=0, dim=8, hidden=8, dropout=0.0, negatives=64)
    module.build(movies, {"train": weights, "test": weights})
    model = module.model
    with torch.no_grad():  # the two Westerns (movies 1 and 2) outscore everything by far
        model.prior.weight[0, model.feature_names.index("genre:Western")] = 100.0

    def loss(user: int, item: int) -> float:
        torch.manual_seed(0)  # 64 popularity draws among 20 movies: both Westerns drawn
        with torch.no_grad():
            return float(module.loss({"user": torch.tensor([user]), "item": torch.tensor([item])}))

    assert loss(0, 0) < 20  # user 0 rated the Westerns: not negatives of their target
    assert loss(1, 3) > 80  # user 1 did not: they outscore the target
    batch = {"user": torch.tensor([0, 1]), "item": torch.tensor([0, 3])}
    module.loss(batch).backward()
    assert model.log_scale.grad is not None and model.encoder[1].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="negatives"):
        ContentModule(2, len(movies), negatives=-1)


def test_sampled_loss_is_the_dense_held_out_objective():
    """The sparse step computes what the dense weights would: each rating's profile from its
    user's other movies, the user's rated movies masked among the negatives."""
    movies = catalogue()
    rng = np.random.default_rng(0)
    pairs = np.unique(rng.integers(0, [10, len(movies)], size=(80, 2)), axis=0)
    users, items = pairs[:, 0], pairs[:, 1]
    weights = UserWeights(users, items, rng.integers(1, 6, len(pairs)), 10, len(movies), 1.0)
    module = ContentModule(10, len(movies), n_tags=5, dim=16, hidden=32, dropout=0.0, negatives=24)
    module.build(movies, {"train": weights, "test": weights})
    model = module.model
    with torch.no_grad():
        model.prior.weight.normal_()
    batch = {"user": torch.as_tensor(users), "item": torch.as_tensor(items)}

    torch.manual_seed(3)
    negatives = sample_negatives(module._log_q, 24)
    w, enc, profile = module._held_out(batch)
    profile = F.normalize(profile, dim=-1)
    prior, scale = model.item_prior(model.features), model.log_scale.exp()
    positive = scale * (profile * enc[batch["item"]]).sum(-1) + prior[batch["item"]]
    negative = (scale * profile @ enc[negatives].T + prior[negatives]).masked_fill(
        w[:, negatives] != 0, float("-inf")
    )
    dense = sampled_cross_entropy(positive, negative, batch["item"], negatives, module._log_q)
    assert torch.isinf(negative).any()  # some users rated some of the drawn movies

    torch.manual_seed(3)
    assert torch.allclose(module.sampled_loss(batch), dense, rtol=1e-5)


def test_config_round_trip_keeps_scores(trained):
    model = trained[0]
    clone = ContentModel(**model.config())
    clone.load_state_dict(model.state_dict())
    clone.eval()
    assert torch.allclose(clone.score_items([0, 1], [5.0, 4.0]), model.score_items([0, 1], [5, 4]))


def test_popularity_feature_is_the_standardised_log_count_of_train_ratings_only() -> None:
    movies = catalogue(n_per_genre=5)
    users, items = np.array([0, 0, 1, 1, 2]), np.array([3, 1, 3, 4, 3])
    ratings = np.array([5.0, 3.0, 4.0, 2.0, 1.0])
    train = UserWeights(users, items, ratings, 4, len(movies), 1.0)
    # movie 7 is rated only outside train (a validation target): it must not count
    test = UserWeights(np.r_[users, 3], np.r_[items, 7], np.r_[ratings, 5.0], 4, len(movies), 1.0)
    module = ContentModule(4, len(movies), n_tags=0, popularity_feature=True)
    module.build(movies, {"train": train, "test": test})
    names, features = module.model.feature_names, module.model.features
    assert names == [*item_features(movies, n_tags=0)[1], POPULARITY]
    assert module.hparams.feature_names == names

    counts = np.bincount(items, minlength=len(movies))
    column = features[:, names.index(POPULARITY)]
    assert torch.allclose(column, popularity_feature(counts)[:, 0])
    assert abs(float(column.mean())) < 1e-5 and abs(float(column.std(unbiased=False)) - 1) < 1e-5
    assert column[3] > column[1] == column[4] > column[7] == column[0]  # 7: like never rated

    moved = ContentModule(4, len(movies), n_tags=0, popularity_feature=True)
    moved.build(movies, {"train": train, "test": train})
    assert torch.equal(moved.model.features, features)


def test_popularity_feature_off_by_default_leaves_the_features_as_they_were() -> None:
    movies = catalogue()
    weights = UserWeights(np.array([0, 1]), np.array([2, 2]), np.array([4.0, 5.0]), 2, 60, 1.0)
    module = ContentModule(2, len(movies), n_tags=5)
    module.build(movies, {"train": weights, "test": weights})
    features, names = item_features(movies, n_tags=5)
    assert module.model.feature_names == names and POPULARITY not in names
    assert torch.equal(module.model.features, features)
    with pytest.raises(ValueError, match="train counts"):
        ContentModel.from_movies(movies, n_tags=5, train_counts=np.ones(3))


def test_popularity_ranks_within_a_genre_and_stays_out_of_explanations() -> None:
    movies = catalogue(n_per_genre=5)
    counts = np.zeros(len(movies))
    counts[[2, 6]] = [40, 3]
    model = ContentModel.from_movies(movies, n_tags=0, train_counts=counts, dim=8, hidden=8)
    model.eval()
    with torch.no_grad():
        model.prior.weight[0, model.feature_names.index(POPULARITY)] = 5.0
    scores = model.score_items([0], [5.0])
    assert scores[2] > scores[6] > scores[1]
    assert set(model.genre_contributions([0], [5.0], 2)) == set(movies["genres"][2])


def test_popularity_feature_of_a_fit_counts_train_and_survives_checkpoint_and_bundle(
    tmp_path: Path,
) -> None:
    """One batch of a real fit: the feature counts protocol S's train part (not the
    validation or test targets), and a checkpoint and a bundle score what was trained."""
    data_module = RatingsDataModule("ml-latest-small", protocol="S", batch_size=256)
    data = data_module.data
    module = ContentModule(
        data.n_users, data.n_items, n_tags=0, dim=8, hidden=8, popularity_feature=True
    )
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, data_module)
    model = module.model.eval()
    column = model.features[:, model.feature_names.index(POPULARITY)]
    train = data.ratings.iloc[data.s.train]["item_idx"].to_numpy()
    counts = np.bincount(train, minlength=data.n_items)
    assert torch.allclose(column, popularity_feature(counts)[:, 0])
    leaked = np.bincount(
        data.ratings.iloc[np.r_[data.s.train, data.s.valid]]["item_idx"], minlength=data.n_items
    )
    assert not torch.allclose(column, popularity_feature(leaked)[:, 0])

    trainer.save_checkpoint(tmp_path / "content.ckpt")
    reloaded = ContentModule.load_from_checkpoint(tmp_path / "content.ckpt").model.eval()
    assert reloaded.feature_names == model.feature_names
    assert torch.equal(reloaded.features, model.features)
    assert torch.equal(reloaded.score_items([0, 5], [5, 3]), model.score_items([0, 5], [5, 3]))

    bundle = tiny_bundle()
    catalog = bundle.catalog
    content = ContentModel.from_movies(
        catalog, n_tags=0, train_counts=catalog["n_ratings"], dim=4, hidden=8
    ).eval()
    with torch.no_grad():
        content.prior.weight.normal_()
    bundle.models.content = content
    loaded = load_bundle(export_bundle(bundle, tmp_path / "bundle")).models.content
    assert loaded.feature_names[-1] == POPULARITY
    assert torch.equal(loaded.features, content.features)
    requests = bundle_requests(bundle)
    assert torch.equal(
        Scorer(BaseModels(bundle.models.popularity, content=loaded)).raw(requests)["content"],
        Scorer(BaseModels(bundle.models.popularity, content=content)).raw(requests)["content"],
    )

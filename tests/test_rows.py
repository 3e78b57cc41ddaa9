"""The home page's row logic without Gradio: which rows, which model serves them, which count
as A/B impressions, and how the visitor's reactions re-rank them (a fake API records calls)."""

from __future__ import annotations

import pytest

from contextflix.web import rows, views

CATALOGUE = {
    i: {"item_id": i, "title": f"Movie {i} (2000)", "year": 2000, "genres": ["Drama"]}
    for i in range(1, 60)
}


class FakeApi:
    """Ranks 1..59 (popularity: 59..1); a liked movie i pulls i+1 and i+2 to the top."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def recommend(self, **kwargs) -> dict:
        self.calls.append(kwargs)
        liked = [int(i) for i, r in (kwargs.get("ratings") or {}).items() if r >= 4]
        ranking = range(59, 0, -1) if kwargs["model"] == "popularity" else range(1, 60)
        order = [j for i in liked for j in (i + 1, i + 2)] + list(ranking)
        seen = set(kwargs.get("history") or [])
        items, used = [], set()
        for i in order:
            if i not in used and i not in seen and i in CATALOGUE:
                used.add(i)
                items.append({**CATALOGUE[i], "explanation": "model reason", "reasons": []})
        return {"items": items[: kwargs.get("k", 10)]}

    def similar_movies(self, item_id: int, k: int = 10) -> dict:
        return {"items": [CATALOGUE[i] for i in range(59, 59 - k, -1)]}

    def user_history(self, user_id: int, limit: int = 50) -> dict:
        return {"items": [{**CATALOGUE[30], "rating": 4.5}, {**CATALOGUE[31], "rating": 2.0}]}

    def user_preferences(self, user_id: int) -> dict:
        return {"genres": [{"genre": "Drama"}, {"genre": "Comedy"}]}


def personal_models(api: FakeApi) -> set[str]:
    return {c["model"] for c in api.calls if c["model"] != "popularity"}


@pytest.mark.parametrize(("arm", "model"), [("A", "hybrid_no_context"), ("B", "hybrid")])
def test_each_arm_is_served_its_model_with_the_visitors_context(arm: str, model: str) -> None:
    api = FakeApi()
    home = rows.home(api, "7", [], arm, "night", "tv")
    assert personal_models(api) == {model}
    for call in api.calls:  # both arms get the context; only the model differs
        assert (call["time_of_day"], call["device"]) == ("night", "tv")
    assert [r.title.split(" - ")[0] for r in home.rows] == [
        "Top picks for you", "Because you watched Movie 30", "Drama for you",
        "Comedy for you", "Popular right now",
    ]  # fmt: skip


def test_only_rows_of_the_arms_model_are_ab_impressions() -> None:
    home = rows.home(FakeApi(), "7", [], "A", "evening", "desktop")
    ab_titles = [r.title for r in home.rows if r.ab]
    assert all(t.startswith(("Top picks", "Drama", "Comedy")) for t in ab_titles)
    counted = {item_id for item_id, _ in home.impressions()}
    similar = next(r for r in home.rows if r.title.startswith("Because"))
    popular = next(r for r in home.rows if r.title.startswith("Popular"))
    assert home.hero["item_id"] in counted
    top = home.rows[0]
    assert {it["item_id"] for it in top.items} <= counted
    only_elsewhere = (
        {it["item_id"] for it in similar.items + popular.items}
        - {it["item_id"] for r in home.rows if r.ab for it in r.items}
        - {home.hero["item_id"]}
    )
    assert only_elsewhere and not only_elsewhere & counted
    assert [rank for _, rank in home.impressions()][:2] == [1, 1]  # hero, then row ranks


def test_without_trained_models_every_row_is_popularity_and_nothing_is_ab() -> None:
    api = FakeApi()
    home = rows.home(api, "7", [], "B", "morning", "mobile", personalised=False)
    assert {c["model"] for c in api.calls} == {"popularity"}
    assert home.impressions() == []
    assert not any(r.title.startswith("Top picks") for r in home.rows)


def test_a_like_re_ranks_at_once_and_names_the_liked_movie() -> None:
    api = FakeApi()
    before = rows.home(api, rows.NEW_VISITOR, [], "B", "evening", "desktop")
    taste = rows.add_reaction([], rows.reaction(CATALOGUE[40], "like"))
    after = rows.home(api, rows.NEW_VISITOR, taste, "B", "evening", "desktop")
    assert before.hero["item_id"] == 1
    assert after.hero["item_id"] == 41  # pulled up by the like
    assert after.hero["explanation"].startswith("Because you liked Movie 40 a moment ago")
    assert after.hero["reasons"][0]["source"] == "session"
    assert "you liked Movie 40 a moment ago" in views.hero_html(after.hero, "x")
    unmoved = next(it for it in after.rows[0].items if it["item_id"] == 10)
    assert unmoved["explanation"] == "model reason"  # only what the like moved names it
    folded = next(c for c in api.calls if c.get("history"))  # the like, folded in as history
    assert folded["history"] == [40] and folded["ratings"] == {"40": 5.0}


def test_a_data_set_user_with_reactions_is_folded_in_with_their_history() -> None:
    taste = [rows.reaction(CATALOGUE[50], "stars", 4.0)]
    who = rows.subject(FakeApi(), "7", taste)
    assert who == {"history": [31, 30, 50], "ratings": {"30": 4.5, "31": 2.0, "50": 4.0}}
    assert rows.subject(FakeApi(), "7", []) == {"user_id": 7}
    assert rows.subject(FakeApi(), rows.NEW_VISITOR, []) == {}


def test_reactions_replace_older_ones_and_dislikes_hide_the_movie() -> None:
    taste = rows.add_reaction([], rows.reaction(CATALOGUE[5], "like"))
    taste = rows.add_reaction(taste, rows.reaction(CATALOGUE[5], "dislike"))
    assert [(t["item_id"], t["rating"], t["how"]) for t in taste] == [(5, 1.0, "dislike")]
    home = rows.home(FakeApi(), rows.NEW_VISITOR, [], "B", None, None, hidden=[1, 2])
    shown = {it["item_id"] for r in home.rows for it in r.items} | {home.hero["item_id"]}
    assert not shown & {1, 2}
    assert "turned down Movie 5" in rows.reaction_phrase(taste[-1])


def test_a_new_visitor_sees_one_popular_row_not_two_copies() -> None:
    home = rows.home(FakeApi(), rows.NEW_VISITOR, [], "B", "night", None)
    assert [r.title for r in home.rows] == ["Popular right now - night"]
    assert home.hero_label == "Most popular - night"


def test_views_escape_catalogue_text_and_say_when_there_is_no_evaluation() -> None:
    item = {"item_id": 1, "title": "<script>x</script>", "genres": ["<b>"], "explanation": "&"}
    html = views.hero_html(item, "label") + views.detail_html(item)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "No evaluation yet" in views.metrics_text({})
    assert views.banner_html(None) == ""
    assert 'role="status"' in views.banner_html("training: stage 3 of 7")


def test_every_image_the_page_builds_has_alt_text_and_report_plots_are_full_width(tmp_path):
    from contextflix.web.cards import caption, poster_img, report_html, strip_html
    from contextflix.web.posters import PosterCache

    posters = PosterCache(tmp_path / "posters")
    movie = {**CATALOGUE[3], "title": 'Quote "Me", The (1999)'}
    assert caption(movie) == 'The Quote "Me" (2000)'
    assert 'alt="Poster of The Quote &quot;Me&quot; (2000)"' in poster_img(posters, movie, "x")
    strip = strip_html(posters, "hybrid", [movie], "cf-compare-hybrid")
    assert 'alt="The Quote &quot;Me&quot; (2000)"' in strip and "/gradio_api/file=" in strip
    reports = tmp_path / "bundle" / "reports"
    reports.mkdir(parents=True)
    (reports / "ndcg_by_context.png").write_bytes(b"")
    figures = report_html(views.report_images(tmp_path / "bundle"))
    assert 'class="cf-report"' in figures and 'alt="ndcg by context plot"' in figures


def test_the_metrics_table_puts_the_peers_beside_ours_labelled_as_such() -> None:
    metrics = {"dataset": "ml-latest-small", "protocols": {"S": {"models": {
        "hybrid": {"hr@10": 0.13, "ndcg@10": 0.0675, "ndcg@10_ci": [0.05, 0.08]}}}}}  # fmt: skip
    peers = views.load_peers("ml-latest-small")
    text = views.metrics_markdown(metrics, peers)
    ours, theirs = text.split("Peers, measured on the identical split")
    assert "| hybrid | 0.1300 | 0.0675 [0.0500, 0.0800]" in ours  # the project's one table
    assert "| RecBole SASRec | 0.1049 | 0.0509 | 0.0347 |" in theirs
    assert "| Surprise SVDpp | 0.8597 |" in theirs
    assert "RecBole" not in views.metrics_markdown({}, peers)  # no figures of ours: none of theirs
    assert set(views.ndcg_bar_frame(metrics, peers)["measured by"]) == {views.OURS, views.PEER}


def test_the_live_ab_view_says_how_many_visitors_were_left_out() -> None:
    online = {"discounted": {"visitors": 2, "refused_writes": 5, "rule": "bursts are left out"}}
    text, frame = views.online_view(online)
    assert "2 visitor(s) left out of these figures: bursts are left out." in text
    assert "5 event writes refused" in text
    assert list(frame["arm"]) == ["A: hybrid without context", "B: hybrid with context"]

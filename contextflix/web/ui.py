"""The ContextFlix page: the callbacks that connect the layout (layout.py) to the row logic
(rows.py) and the views (views.py).

Every callback goes through ``api.friendly``: a visitor sees a sentence, never a trace. The
A/B arm comes from the server-issued visitor cookie; arm A is served ``hybrid_no_context`` and
arm B ``hybrid``, and only the rows their model computed are logged as A/B impressions. The
visitor's reactions (like, not for me, stars, picks) live in browser storage and are folded
into their history at once, so the rows re-rank and say which reaction moved them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import gradio as gr

from contextflix.evaluation.ab import assign_arm
from contextflix.web import rows, views
from contextflix.web.api import Api, friendly, register_gradio_endpoints
from contextflix.web.cards import caption, gallery_value, poster_img
from contextflix.web.context import (
    BROWSER_TIME_OF_DAY_JS,
    DEVICES,
    TIMES_OF_DAY,
    device_from_user_agent,
)
from contextflix.web.events import EventLog
from contextflix.web.identity import VisitorIds
from contextflix.web.layout import Page, build_layout
from contextflix.web.posters import PosterCache
from contextflix.web.startup import Serving
from contextflix.web.tabs import API_HELP, wire_tabs

log = logging.getLogger(__name__)


@dataclass
class UiConfig:
    """What the page needs besides the API: posters, events, what is served, the A/B test."""

    posters: PosterCache
    events: EventLog | None
    serving: Serving
    ab_split: float = 0.5
    ab_salt: str = "contextflix-ab-v1"
    n_profiles: int = 100
    visitors: VisitorIds | None = None
    footer: str = ""


def build_ui(api: Api, cfg: UiConfig) -> gr.Blocks:
    """The Blocks page; also registers the named API endpoints on it."""
    serving = cfg.serving
    training = serving.training is not None and not serving.training.done
    page = build_layout(api.movie_genres()["genres"], training, cfg.footer, API_HELP)
    with page.demo:
        register_gradio_endpoints(api)
        wire(page, api, cfg)
    return page.demo


def wire(p: Page, api: Api, cfg: UiConfig) -> None:
    posters, serving = cfg.posters, cfg.serving

    def record(sess: dict, kind: str, items: list[tuple[int, int]], tod: str, dev: str) -> None:
        if cfg.events is not None and sess.get("visitor_id") and items and serving.personalised:
            cfg.events.record(kind, sess["arm"], sess["visitor_id"], items, tod, dev)

    def render_home(profile, taste, sess, tod, dev, hidden, note: str = ""):
        home = rows.home(
            api,
            profile,
            taste,
            sess.get("arm", "B"),
            tod,
            dev,
            hidden,
            personalised=serving.personalised,
        )
        record(sess, "impression", home.impressions(), tod, dev)
        galleries = []
        for n in range(rows.N_ROWS):
            if n < len(home.rows):
                row = home.rows[n]
                galleries.append(
                    gr.Gallery(gallery_value(posters, row.items), label=row.title, visible=True)
                )
            else:
                galleries.append(gr.Gallery([], visible=False))
        state = [{"items": r.items, "ab": r.ab} for r in home.rows]
        hero = ""
        if home.hero:
            poster = poster_img(posters, home.hero, "cf-hero-poster")
            hero = (
                f'<div class="cf-split">{poster}{views.hero_html(home.hero, home.hero_label)}</div>'
            )
        hero_state = {"item": home.hero, "ab": bool(home.rows and home.rows[0].ab)}
        return [
            hero,
            hero_state,
            state,
            views.banner_html(" ".join(m for m in (note, serving.banner()) if m)),
            views.taste_html(taste),
            gr.Button(visible=bool(taste)),
            *galleries,
        ]

    home_outputs = [p.hero, p.hero_item, p.rows_state, p.banner, p.taste_text, p.undo, *p.rows]
    detail_outputs = [p.detail, p.detail_text, p.similar, p.current, p.similar_state, p.stars]

    def open_item(entry: dict | None, sess, tod, dev, rank: int, taste):
        if not entry or not entry.get("item"):
            return [gr.skip()] * len(detail_outputs)
        item = entry["item"]
        if entry.get("ab"):
            record(sess, "click", [(item["item_id"], rank)], tod, dev)
        similar = api.similar_movies(item["item_id"], k=rows.ROW_K)["items"]
        mine = next((t["rating"] for t in taste or [] if t["item_id"] == item["item_id"]), None)
        poster = poster_img(posters, item, "cf-detail-poster")
        about = views.detail_html(item, {"time_of_day": tod, "device": dev}, mine)
        text = f'<div class="cf-split">{poster}{about}</div>'
        return [
            gr.Column(visible=True),
            text,
            gallery_value(posters, similar),
            entry,
            similar,
            gr.Radio(value=mine),
        ]

    # --- first render: identity, context, deep links -------------------------------------
    @friendly
    def init(tod, taste, hidden, request: gr.Request):
        params = dict(request.query_params) if request else {}
        agent = request.headers.get("user-agent", "") if request else ""
        # The server-issued cookie, never the client-chosen session hash; anonymous
        # requests are served (as arm B) but log nothing.
        visitor = cfg.visitors.visitor(request) if cfg.visitors and request else None
        arm = assign_arm(visitor, cfg.ab_split, cfg.ab_salt) if visitor else "B"
        sess = {"visitor_id": visitor, "arm": arm}
        dev = (
            params.get("device")
            if params.get("device") in DEVICES
            else device_from_user_agent(agent)
        )
        tod = params.get("time_of_day") if params.get("time_of_day") in TIMES_OF_DAY else tod
        tod = tod if tod in TIMES_OF_DAY else "evening"
        choices = profile_choices()
        notes: list[str] = []
        profile = rows.NEW_VISITOR
        if params.get("user"):
            wanted = str(params["user"])
            try:
                api.user_history(int(wanted), limit=1)
                profile = wanted
                if wanted not in {value for _, value in choices}:
                    choices.append((f"User {wanted}", wanted))
            except Exception:
                notes.append(f"There is no user {wanted} in this data set, so this is the page "
                             "for a new visitor.")  # fmt: skip
        detail = [gr.skip()] * len(detail_outputs)
        if params.get("movie"):
            try:
                movie = api.similar_movies(int(params["movie"]), k=1)
                movie = {k: movie[k] for k in ("item_id", "title", "year", "genres")}
                detail = open_item({"item": movie, "ab": False}, sess, tod, dev, 1, taste)
            except Exception:
                notes.append(f"There is no movie {params['movie']} in this catalogue.")
        out = [sess, gr.Dropdown(choices=choices, value=profile), tod, dev, serving.version]
        return (
            out
            + render_home(profile, taste or [], sess, tod, dev, hidden, " ".join(notes))
            + detail
        )

    def profile_choices() -> list[tuple[str, str]]:
        users = api.users(limit=cfg.n_profiles)["users"]
        return [("New visitor (or your own picks)", rows.NEW_VISITOR)] + [
            (f"User {u['user_id']} · {u.get('n_ratings', '?')} ratings", str(u["user_id"]))
            for u in users
        ]

    p.demo.load(
        init,
        [p.tod, p.taste, p.hidden],
        [p.session, p.profile, p.tod, p.device, p.version, *home_outputs, *detail_outputs],
        js=BROWSER_TIME_OF_DAY_JS,  # the browser's local hour replaces the first input
        queue=False,  # one HTTP round trip for the first render, no queue handshake
    )

    @friendly
    def refresh(profile, taste, sess, tod, dev, hidden):
        return render_home(profile, taste or [], sess, tod, dev, hidden)

    home_inputs = [p.profile, p.taste, p.session, p.tod, p.device, p.hidden]
    for control in (p.profile, p.tod, p.device):
        control.input(refresh, home_inputs, home_outputs)

    @friendly
    def tick(version, *args):
        """While the models train: keep the banner current; re-render once they are in."""
        if version == serving.version:
            failed = serving.training is not None and serving.training.error is not None
            return [
                version,
                gr.Timer(active=not failed),
                gr.skip(),
                gr.skip(),
                gr.skip(),
                views.banner_html(serving.banner()),
                *[gr.skip()] * (len(home_outputs) - 4),
            ]
        return [serving.version, gr.Timer(active=False), *refresh(*args)]

    p.timer.tick(
        tick, [p.version, *home_inputs], [p.version, p.timer, *home_outputs], show_progress="hidden"
    )

    # --- rows and the detail view ----------------------------------------------------------
    def make_select(n: int):
        @friendly
        def select(state, sess, tod, dev, taste, evt: gr.SelectData):
            row = state[n] if n < len(state) else {"items": []}
            index = evt.index if isinstance(evt.index, int) else 0
            if not 0 <= index < len(row["items"]):
                return [gr.skip()] * len(detail_outputs)
            entry = {"item": row["items"][index], "ab": row["ab"]}
            return open_item(entry, sess, tod, dev, index + 1, taste)

        return select

    for n, gallery in enumerate(p.rows):
        gallery.select(
            make_select(n),
            [p.rows_state, p.session, p.tod, p.device, p.taste],
            detail_outputs,
            scroll_to_output=True,
        )

    @friendly
    def select_similar(items, sess, tod, dev, taste, evt: gr.SelectData):
        index = evt.index if isinstance(evt.index, int) else 0
        if not 0 <= index < len(items):
            return [gr.skip()] * len(detail_outputs)
        return open_item({"item": items[index], "ab": False}, sess, tod, dev, index + 1, taste)

    p.similar.select(
        select_similar,
        [p.similar_state, p.session, p.tod, p.device, p.taste],
        detail_outputs,
        scroll_to_output=True,
    )
    p.hero_more.click(
        friendly(lambda e, s, t, d, ts: open_item(e, s, t, d, 1, ts)),
        [p.hero_item, p.session, p.tod, p.device, p.taste],
        detail_outputs,
        scroll_to_output=True,
    )
    p.close.click(lambda: gr.Column(visible=False), None, p.detail)

    # --- the page learns: reactions feed the visitor's own history ----------------------------
    def react(how: str, close: bool):
        @friendly
        def handler(entry, stars, profile, taste, sess, tod, dev, hidden):
            if not entry or not entry.get("item"):
                raise gr.Error("Open a movie first, then rate it.")
            item = entry["item"]
            if how == "stars" and not stars:
                return [gr.skip()] * (3 + len(home_outputs))
            if entry.get("ab") and how != "dislike":
                record(sess, "like", [(item["item_id"], 1)], tod, dev)
            taste = rows.add_reaction(taste or [], rows.reaction(item, how, stars))
            hidden = list(hidden or [])
            if how == "dislike":
                hidden.append(item["item_id"])
            home = render_home(profile, taste, sess, tod, dev, hidden)
            return [taste, hidden, gr.Column(visible=False) if close else gr.skip(), *home]

        return handler

    react_inputs = [p.current, p.stars, *home_inputs]
    react_outputs = [p.taste, p.hidden, p.detail, *home_outputs]
    p.like.click(react("like", True), react_inputs, react_outputs, scroll_to_output=True)
    p.dislike.click(react("dislike", True), react_inputs, react_outputs)
    p.stars.input(react("stars", False), react_inputs, react_outputs)
    p.hero_like.click(react("like", False), [p.hero_item, p.stars, *home_inputs], react_outputs)
    p.hero_dislike.click(
        react("dislike", False), [p.hero_item, p.stars, *home_inputs], react_outputs
    )

    @friendly
    def undo(profile, taste, sess, tod, dev, hidden):
        taste = list(taste or [])
        if not taste:
            return [gr.skip(), gr.skip(), *refresh(profile, taste, sess, tod, dev, hidden)]
        last = taste.pop()
        hidden = [h for h in hidden or [] if h != last["item_id"]]
        gr.Info(f"Undone: {rows.reaction_phrase(last).replace(' a moment ago', '')}.")
        return [taste, hidden, *render_home(profile, taste, sess, tod, dev, hidden)]

    p.undo.click(undo, home_inputs, [p.taste, p.hidden, *home_outputs])

    # --- New here? ----------------------------------------------------------------------------
    @friendly
    def do_search(query: str, genre: str):
        found = api.movies(query=query or "", genre=genre or "", limit=24)["movies"]
        return gallery_value(posters, found), found

    p.search.change(
        do_search,
        [p.search, p.genre],
        [p.results, p.results_state],
        trigger_mode="always_last",
        show_progress="hidden",
    )
    p.genre.change(do_search, [p.search, p.genre], [p.results, p.results_state])
    p.new_tab.select(do_search, [p.search, p.genre], [p.results, p.results_state])

    def picks_view(taste: list[dict]) -> gr.Gallery:
        """The visitor's picks and ratings; hidden while there are none (no empty box)."""
        value = [(str(posters.for_item(t)), f"{caption(t)} ★{t['rating']:g}") for t in taste or []]
        return gr.Gallery(value, visible=bool(value))

    @friendly
    def pick(found, taste, stars, evt: gr.SelectData):
        index = evt.index if isinstance(evt.index, int) else -1
        if not 0 <= index < len(found):
            return gr.skip(), gr.skip()
        taste = rows.add_reaction(taste or [], rows.reaction(found[index], "pick", stars))
        return taste, picks_view(taste)

    p.results.select(pick, [p.results_state, p.taste, p.pick_stars], [p.taste, p.picks])

    def unpick(taste, evt: gr.SelectData):
        taste = [t for i, t in enumerate(taste or []) if i != evt.index]
        return taste, picks_view(taste)

    p.picks.select(unpick, [p.taste], [p.taste, p.picks])
    p.clear.click(lambda: ([], gr.Gallery([], visible=False)), None, [p.taste, p.picks])
    p.new_tab.select(picks_view, [p.taste], [p.picks])

    @friendly
    def go(taste, sess, tod, dev, hidden):
        if not taste:
            raise gr.Error("Pick at least one movie first.")
        home = render_home(rows.NEW_VISITOR, taste, sess, tod, dev, hidden)
        return [rows.NEW_VISITOR, gr.Tabs(selected="home"), *home]

    p.go.click(
        go, [p.taste, p.session, p.tod, p.device, p.hidden], [p.profile, p.tabs, *home_outputs]
    )

    wire_tabs(p, api, cfg)

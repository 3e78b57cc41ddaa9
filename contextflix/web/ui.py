"""The ContextFlix page: a Netflix-like home (hero + poster rows), detail view, profiles, the
"new here" path, model comparison and the evaluation / A/B / context-impact tabs.

Every callback goes through ``api.friendly``: a visitor sees a short message, never a trace.
Each visitor session is assigned an A/B arm; arm A gets the hybrid without context (context
inputs passed as None), arm B with context, and impressions and reactions go to the event log.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from contextflix.evaluation.ab import assign_arm
from contextflix.web.api import Api, friendly, register_gradio_endpoints
from contextflix.web.context import (
    BROWSER_TIME_OF_DAY_JS,
    DEVICES,
    TIMES_OF_DAY,
    device_from_user_agent,
)
from contextflix.web.events import EventLog
from contextflix.web.identity import VisitorIds
from contextflix.web.posters import PosterCache, clean_title

log = logging.getLogger(__name__)

N_ROWS = 6  # top picks, because you watched, up to 3 favourite genres, popular
ROW_K = 12
N_GENRE_ROWS = 3
NEW_VISITOR = "new"
COMPARE_MODELS = ("hybrid", "collaborative", "content", "sequential", "popularity")
DEVICE_WORDS = {
    "mobile": "on your phone",
    "tablet": "on a tablet",
    "desktop": "on desktop",
    "tv": "on TV",
}
SOURCE_LABELS = {
    "collaborative": "People like you",
    "content": "Your taste",
    "sequential": "What you watched last",
    "popularity": "Popular",
    "context": "Right now",
}


@dataclass
class UiConfig:
    """What the page needs besides the API: where posters, events and reports live."""

    posters: PosterCache
    events: EventLog | None
    bundle_dir: Path | None
    ab_split: float = 0.5
    ab_salt: str = "contextflix-ab-v1"
    n_profiles: int = 100
    visitors: VisitorIds | None = None


# --- small pure helpers ------------------------------------------------------------------


def poster_row(label: str, **kwargs) -> gr.Gallery:
    """A horizontally scrolling row of posters (styled by .cf-row in style.css)."""
    return gr.Gallery(
        label=label,
        elem_classes="cf-row",
        columns=12,
        allow_preview=False,
        height="auto",
        object_fit="cover",
        **kwargs,
    )


def context_title(time_of_day: str | None, device: str | None) -> str:
    """ "evening on TV"; what the context-aware rows say they are tuned to."""
    parts = [time_of_day or "", DEVICE_WORDS.get(device or "", "")]
    return " ".join(p for p in parts if p)


def gallery_value(posters: PosterCache, items: list[dict]) -> list[tuple[str, str]]:
    return [(str(posters.for_item(it)), clean_title(it.get("title", ""))) for it in items]


def reasons_html(item: dict) -> str:
    """The "why" of one recommendation: every reason with its source, strongest first."""
    reasons = sorted(item.get("reasons") or [], key=lambda r: -(r.get("weight") or 0))
    if len(reasons) == 1 and reasons[0].get("text") == item.get("explanation"):
        reasons = []  # already said in the explanation line
    rows = "".join(
        f'<li><span class="cf-chip cf-src-{escape(str(r.get("source", "")))}">'
        f"{escape(SOURCE_LABELS.get(r.get('source', ''), str(r.get('source', '')).title()))}</span>"
        f" {escape(str(r.get('text', '')))}</li>"
        for r in reasons
    )
    return f'<ul class="cf-reasons">{rows}</ul>' if rows else ""


def detail_html(item: dict, context: dict | None = None) -> str:
    year = item.get("year")
    genres = " ".join(f'<span class="cf-genre">{escape(g)}</span>' for g in item.get("genres", []))
    meta = [str(year) if year else "", f"#{item['rank']} for you" if item.get("rank") else ""]
    ctx = ""
    if context and (context.get("time_of_day") or context.get("device")):
        ctx = (
            f'<p class="cf-muted">Tuned to {escape(context_title(context.get("time_of_day"), context.get("device")))}'
            f"{' (device simulated in training data)' if context.get('device') else ''}.</p>"
        )
    return (
        f'<div class="cf-detail-text"><h2>{escape(clean_title(item.get("title", "")))}</h2>'
        f'<p class="cf-meta">{" · ".join(m for m in meta if m)}</p><p>{genres}</p>'
        f'<h4>Why we picked it</h4><p class="cf-expl">{escape(item.get("explanation") or "")}</p>'
        f"{reasons_html(item)}{ctx}</div>"
    )


def hero_html(item: dict | None, label: str) -> str:
    if not item:
        return '<div class="cf-hero-text"><h1>Nothing to show yet</h1></div>'
    genres = " · ".join(item.get("genres", [])[:3])
    year = item.get("year") or ""
    return (
        f'<div class="cf-hero-text"><div class="cf-kicker">{escape(label)}</div>'
        f"<h1>{escape(clean_title(item.get('title', '')))}</h1>"
        f'<p class="cf-meta">{year} · {escape(genres)}</p>'
        f'<p class="cf-expl">{escape(item.get("explanation") or "")}</p>'
        f"{reasons_html(item)}</div>"
    )


def preferences_html(prefs: dict) -> str:
    rows = "".join(
        f'<div class="cf-bar"><span>{escape(g["genre"])}</span>'
        f'<div class="cf-bar-track"><div class="cf-bar-fill" style="width:{100 * g["share"] / max(prefs["genres"][0]["share"], 1e-9):.0f}%"></div></div>'
        f'<span class="cf-muted">{g["count"]} · ★ {g["mean_rating"]:.1f}</span></div>'
        for g in prefs.get("genres", [])[:10]
    )
    return f'<div class="cf-bars">{rows or "<p>No ratings yet.</p>"}</div>'


# --- the page ---------------------------------------------------------------------------------


def build_ui(api: Api, cfg: UiConfig) -> gr.Blocks:
    """The Blocks page; also registers the named API endpoints on it."""
    posters = cfg.posters

    def profile_choices() -> list[tuple[str, str]]:
        try:
            users = api.users(limit=cfg.n_profiles)["users"]
        except Exception:
            log.exception("could not list users")
            users = []
        return [("New visitor (pick a few movies)", NEW_VISITOR)] + [
            (f"User {u['user_id']} · {u.get('n_ratings', '?')} ratings", str(u["user_id"]))
            for u in users
        ]

    def subject(profile: str, picks: list) -> dict:
        """recommend() arguments for the chosen profile or the visitor's own picks."""
        if profile and profile != NEW_VISITOR:
            return {"user_id": int(profile)}
        if picks:
            return {"history": [p[0] for p in picks], "ratings": {str(p[0]): p[1] for p in picks}}
        return {}

    def served_context(session: dict, tod: str, device: str) -> dict:
        """Arm A (control) ignores the context; arm B (treatment) uses it."""
        if session.get("arm") == "A":
            return {"time_of_day": None, "device": None}
        return {"time_of_day": tod or None, "device": device or None}

    def log_events(session: dict, kind: str, items: list[tuple[int, int]], tod: str, device: str):
        if cfg.events is not None and session.get("visitor_id"):
            cfg.events.record(kind, session["arm"], session["visitor_id"], items, tod, device)

    def home_rows(profile: str, picks: list, session: dict, tod: str, device: str, hidden: list):
        """[(title, items)] for the home page, the hero item and its label."""
        who = subject(profile, picks)
        ctx = served_context(session, tod, device)
        drop = set(hidden or [])

        def rec(**kwargs: Any) -> list[dict]:
            k = ROW_K + len(drop)
            items = api.recommend(**who, **ctx, k=k, **kwargs)["items"]
            return [it for it in items if it["item_id"] not in drop][:ROW_K]

        rows: list[tuple[str, list[dict]]] = []
        where = context_title(ctx["time_of_day"], ctx["device"])
        top = rec()
        rows.append((f"Top picks for you{' - ' + where if where else ''}", top[1:]))

        seed = None
        if "user_id" in who:
            recent = api.user_history(who["user_id"], limit=30)["items"]
            seed = next(
                (h for h in recent if h.get("rating", 0) >= 4), recent[0] if recent else None
            )
            prefs = api.user_preferences(who["user_id"])["genres"]
            genres = [g["genre"] for g in prefs[:N_GENRE_ROWS]]
        else:
            genres = []
            if picks:
                seed = {"item_id": picks[-1][0], "title": picks[-1][2]}
                counts = Counter(g for p in picks for g in p[3])
                genres = [g for g, _ in counts.most_common(N_GENRE_ROWS)]
        if seed is not None:
            similar = api.similar_movies(seed["item_id"], k=ROW_K)["items"]
            rows.append((f"Because you watched {clean_title(seed['title'])}", similar))
        for genre in genres:
            rows.append((f"{genre} for you", rec(genres=genre)))
        popular = api.recommend(**ctx, k=ROW_K, model="popularity")["items"]
        rows.append((f"Popular right now{' - ' + where if where else ''}", popular))
        label = f"#1 pick for you{' - ' + where if where else ''}"
        return rows, (top[0] if top else None), label

    def render_home(profile, picks, session, tod, device, hidden):
        rows, hero, label = home_rows(profile, picks, session, tod, device, hidden)
        shown = [(it["item_id"], rank) for _, items in rows for rank, it in enumerate(items, 1)]
        if hero:
            shown.append((hero["item_id"], 1))
        log_events(session, "impression", shown, tod, device)
        galleries = []
        for n in range(N_ROWS):
            if n < len(rows) and rows[n][1]:
                title, items = rows[n]
                galleries.append(
                    gr.Gallery(gallery_value(posters, items), label=title, visible=True)
                )
            else:
                galleries.append(gr.Gallery([], visible=False))
        state = [items for _, items in rows] + [[] for _ in range(N_ROWS - len(rows))]
        hero_img = str(posters.for_item(hero, large=True)) if hero else None
        return [hero_img, hero_html(hero, label), hero, state, *galleries]

    # --- layout ---------------------------------------------------------------------------
    with gr.Blocks(title="ContextFlix") as demo:
        session = gr.State({})
        picks = gr.State([])  # [[item_id, rating, title, genres], ...]
        hidden = gr.State([])  # "Not for me" items this session
        rows_state = gr.State([[] for _ in range(N_ROWS)])
        hero_item = gr.State(None)
        current = gr.State(None)
        similar_state = gr.State([])

        with gr.Row(elem_classes="cf-topbar", equal_height=True):
            gr.HTML(
                '<div class="cf-logo">CONTEXT<span>FLIX</span></div>', elem_classes="cf-logo-wrap"
            )
            profile = gr.Dropdown(
                profile_choices(), value=NEW_VISITOR, label="Who's watching?", elem_id="cf-profile",
                min_width=200, scale=2,
            )  # fmt: skip
            tod = gr.Dropdown(
                list(TIMES_OF_DAY),
                value="evening",
                label="Time of day",
                elem_id="cf-tod",
                min_width=120,
                scale=1,
            )
            device = gr.Dropdown(
                list(DEVICES),
                value="desktop",
                label="Device",
                elem_id="cf-device",
                min_width=120,
                scale=1,
            )

        with gr.Tabs(elem_classes="cf-tabs") as tabs:
            with gr.Tab("Home", id="home"):
                with gr.Row(elem_classes="cf-hero", elem_id="cf-hero"):
                    hero_img = gr.Image(
                        show_label=False,
                        container=False,
                        interactive=False,
                        elem_classes="cf-hero-poster",
                        min_width=160,
                        scale=1,
                        buttons=[],
                    )
                    with gr.Column(scale=3, min_width=240):
                        hero_text = gr.HTML(elem_id="cf-hero-text")
                        hero_more = gr.Button("More info", elem_classes="cf-btn-ghost", size="sm")
                with gr.Column(
                    visible=False, elem_classes="cf-detail", elem_id="cf-detail"
                ) as detail:
                    with gr.Row():
                        detail_img = gr.Image(
                            show_label=False,
                            container=False,
                            interactive=False,
                            min_width=160,
                            scale=1,
                            buttons=[],
                        )
                        with gr.Column(scale=3, min_width=240):
                            detail_text = gr.HTML(elem_id="cf-detail-text")
                            with gr.Row():
                                like_btn = gr.Button(
                                    "👍 More like this",
                                    variant="primary",
                                    size="sm",
                                    elem_id="cf-like",
                                )
                                dismiss_btn = gr.Button(
                                    "👎 Not for me", size="sm", elem_id="cf-dismiss"
                                )
                                close_btn = gr.Button("✕ Close", size="sm", elem_id="cf-close")
                    similar_gallery = poster_row("More like this")
                row_galleries = [
                    poster_row("", elem_id=f"cf-row-{n}", visible=n == 0) for n in range(N_ROWS)
                ]

            with gr.Tab("New here?", id="new"):
                gr.Markdown(
                    "### Pick a few movies you like\nSearch or click posters; each pick gets the rating below. Then get your recommendations."
                )
                with gr.Row():
                    search = gr.Textbox(
                        placeholder="Search titles, e.g. matrix",
                        label="Search",
                        elem_id="cf-search",
                        scale=3,
                        min_width=200,
                    )
                    genre_filter = gr.Dropdown(
                        [""] + api.movie_genres()["genres"],
                        value="",
                        label="Genre",
                        scale=1,
                        min_width=140,
                    )
                    stars = gr.Radio(
                        [5.0, 4.0, 3.0, 2.0, 1.0],
                        value=5.0,
                        label="Your rating for the next pick (stars)",
                        scale=2,
                        min_width=220,
                    )
                results = poster_row("Click to pick", elem_id="cf-results")
                results_state = gr.State([])
                picks_gallery = poster_row("Your picks (click to remove)", elem_id="cf-picks")
                with gr.Row():
                    go_btn = gr.Button("Get my recommendations", variant="primary", elem_id="cf-go")
                    clear_btn = gr.Button("Start over")

            with gr.Tab("Profile", id="profile"):
                profile_md = gr.Markdown()
                prefs_html = gr.HTML()
                history_df = gr.Dataframe(
                    label="Recent ratings (device simulated)", interactive=False, wrap=True
                )

            with gr.Tab("Compare models", id="compare"):
                gr.Markdown("The same profile and context, ranked by each model on its own.")
                compare_btn = gr.Button("Compare", variant="primary", elem_id="cf-compare")
                compare_galleries = [poster_row(m) for m in COMPARE_MODELS]

            with gr.Tab("Evaluation", id="evaluation"):
                eval_md = gr.Markdown()
                eval_df = gr.Dataframe(interactive=False, wrap=True)
                eval_plots = gr.Gallery(
                    label="Reports", columns=2, height="auto", allow_preview=True
                )

            with gr.Tab("A/B test", id="ab"):
                ab_md = gr.Markdown()
                ab_refresh = gr.Button("Refresh live results", size="sm")
                ab_df = gr.Dataframe(label="Live test (this app's visitors)", interactive=False)
                ab_json = gr.JSON(label="Offline A/B (paired, protocol S test users)")

            with gr.Tab("Context impact", id="context"):
                gr.Markdown(
                    "How the same profile's top picks change with the time of day (hybrid with context)."
                )
                ctx_btn = gr.Button("Show", size="sm")
                ctx_galleries = [poster_row(t) for t in TIMES_OF_DAY]
                ctx_plots = gr.Gallery(label="Context impact (offline)", columns=2, height="auto")

            with gr.Tab("API", id="api"):
                gr.Markdown(API_HELP)

        gr.HTML(
            '<div class="cf-footer">MovieLens data: GroupLens Research. Posters are generated. Devices in the training data are simulated.</div>'
        )
        register_gradio_endpoints(api)

        # --- callbacks --------------------------------------------------------------------
        home_outputs = [hero_img, hero_text, hero_item, rows_state, *row_galleries]

        @friendly
        def init(
            tod_value: str,
            profile_value: str,
            picks_value: list,
            hidden_value: list,
            request: gr.Request,
        ):
            agent = request.headers.get("user-agent", "") if request else ""
            # The server-issued cookie, never the client-chosen session hash; anonymous
            # requests are served (as arm B) but log nothing.
            visitor = cfg.visitors.visitor(request) if cfg.visitors and request else None
            arm = assign_arm(visitor, cfg.ab_split, cfg.ab_salt) if visitor else "B"
            sess = {"visitor_id": visitor, "arm": arm}
            dev = device_from_user_agent(agent)
            tod_value = tod_value if tod_value in TIMES_OF_DAY else "evening"
            home = render_home(profile_value, picks_value, sess, tod_value, dev, hidden_value)
            return [sess, dev, *home]

        @friendly
        def refresh(profile_value, picks_value, sess, tod_value, dev, hidden_value):
            return render_home(profile_value, picks_value, sess, tod_value, dev, hidden_value)

        def open_item(item: dict | None, sess: dict, tod_value: str, dev: str, rank: int):
            if not item:
                return [gr.skip()] * 6
            log_events(sess, "click", [(item["item_id"], rank)], tod_value, dev)
            similar = api.similar_movies(item["item_id"], k=ROW_K)["items"]
            ctx = served_context(sess, tod_value, dev)
            return [
                gr.Column(visible=True),
                str(posters.for_item(item, large=True)),
                detail_html(item, ctx),
                gallery_value(posters, similar),
                item,
                similar,
            ]

        detail_outputs = [detail, detail_img, detail_text, similar_gallery, current, similar_state]

        def make_select(n: int):
            @friendly
            def select(rows, sess, tod_value, dev, evt: gr.SelectData):
                items = rows[n] if n < len(rows) else []
                index = evt.index if isinstance(evt.index, int) else 0
                item = items[index] if 0 <= index < len(items) else None
                return open_item(item, sess, tod_value, dev, index + 1)

            return select

        for n, gallery in enumerate(row_galleries):
            gallery.select(
                make_select(n),
                [rows_state, session, tod, device],
                detail_outputs,
                scroll_to_output=True,
            )

        @friendly
        def select_similar(items, sess, tod_value, dev, evt: gr.SelectData):
            index = evt.index if isinstance(evt.index, int) else 0
            item = items[index] if 0 <= index < len(items) else None
            return open_item(item, sess, tod_value, dev, index + 1)

        similar_gallery.select(
            select_similar,
            [similar_state, session, tod, device],
            detail_outputs,
            scroll_to_output=True,
        )
        hero_more.click(
            friendly(lambda item, s, t, d: open_item(item, s, t, d, 1)),
            [hero_item, session, tod, device],
            detail_outputs,
            scroll_to_output=True,
        )
        close_btn.click(lambda: gr.Column(visible=False), None, detail)

        @friendly
        def like(item, sess, tod_value, dev):
            if item:
                log_events(sess, "like", [(item["item_id"], 1)], tod_value, dev)
                gr.Info(f"Noted: more like {clean_title(item['title'])}.")

        like_btn.click(like, [current, session, tod, device], None)

        @friendly
        def dismiss(item, hidden_value, profile_value, picks_value, sess, tod_value, dev):
            hidden_value = list(hidden_value or [])
            if item:
                log_events(sess, "dismiss", [(item["item_id"], 1)], tod_value, dev)
                hidden_value.append(item["item_id"])
            home = render_home(profile_value, picks_value, sess, tod_value, dev, hidden_value)
            return [hidden_value, gr.Column(visible=False), *home]

        dismiss_btn.click(
            dismiss,
            [current, hidden, profile, picks, session, tod, device],
            [hidden, detail, *home_outputs],
        )

        load = demo.load(None, None, tod, js=BROWSER_TIME_OF_DAY_JS)
        load.then(init, [tod, profile, picks, hidden], [session, device, *home_outputs])
        refresh_inputs = [profile, picks, session, tod, device, hidden]
        for control in (profile, tod, device):
            control.input(refresh, refresh_inputs, home_outputs)

        # New visitor path
        @friendly
        def do_search(query: str, genre: str):
            found = api.movies(query=query or "", genre=genre or "", limit=24)["movies"]
            return gallery_value(posters, found), found

        search.submit(do_search, [search, genre_filter], [results, results_state])
        search.change(
            do_search,
            [search, genre_filter],
            [results, results_state],
            trigger_mode="always_last",
            show_progress="hidden",
        )
        genre_filter.change(do_search, [search, genre_filter], [results, results_state])
        demo.load(do_search, [search, genre_filter], [results, results_state])

        def picks_view(values: list) -> list:
            return [
                (str(posters.path(p[0], p[2], p[4], p[3])), f"{clean_title(p[2])} ★{p[1]:g}")
                for p in values
            ]

        @friendly
        def pick(found, values, rating, evt: gr.SelectData):
            index = evt.index if isinstance(evt.index, int) else -1
            if not 0 <= index < len(found):
                return gr.skip(), gr.skip()
            movie = found[index]
            values = [p for p in (values or []) if p[0] != movie["item_id"]]
            values.append(
                [
                    movie["item_id"],
                    float(rating or 5.0),
                    movie["title"],
                    movie.get("genres", []),
                    movie.get("year"),
                ]
            )
            return values, picks_view(values)

        results.select(pick, [results_state, picks, stars], [picks, picks_gallery])

        def unpick(values, evt: gr.SelectData):
            values = [p for i, p in enumerate(values or []) if i != evt.index]
            return values, picks_view(values)

        picks_gallery.select(unpick, [picks], [picks, picks_gallery])
        clear_btn.click(lambda: ([], []), None, [picks, picks_gallery])

        @friendly
        def go(values, sess, tod_value, dev, hidden_value):
            if not values:
                raise gr.Error("Pick at least one movie first.")
            home = render_home(NEW_VISITOR, values, sess, tod_value, dev, hidden_value)
            return [NEW_VISITOR, gr.Tabs(selected="home"), *home]

        go_btn.click(go, [picks, session, tod, device, hidden], [profile, tabs, *home_outputs])

        # Profile tab
        @friendly
        def show_profile(profile_value, values):
            if not profile_value or profile_value == NEW_VISITOR:
                text = "### New visitor\n" + (
                    f"{len(values)} picks: " + ", ".join(clean_title(p[2]) for p in values)
                    if values
                    else "No picks yet: use **New here?** to pick a few movies."
                )
                counts = Counter(g for p in values or [] for g in p[3])
                total = sum(counts.values()) or 1
                prefs = {
                    "genres": [
                        {"genre": g, "share": c / total, "count": c, "mean_rating": 0.0}
                        for g, c in counts.most_common()
                    ]
                }
                return text, preferences_html(prefs), None
            uid = int(profile_value)
            prefs = api.user_preferences(uid)
            hist = api.user_history(uid, limit=50)
            rows = [
                [
                    clean_title(h["title"]),
                    h.get("year"),
                    h["rating"],
                    _date(h["timestamp"]),
                    h["time_of_day"],
                    h["device"],
                ]
                for h in hist["items"]
            ]
            frame = pd.DataFrame(
                rows, columns=["title", "year", "rating", "date", "time of day", "device"]
            )
            text = f"### User {uid}\n{hist.get('total', len(rows))} ratings; favourite genres below (share of ratings, count, mean rating)."
            return text, preferences_html(prefs), frame

        profile.change(show_profile, [profile, picks], [profile_md, prefs_html, history_df])
        picks.change(show_profile, [profile, picks], [profile_md, prefs_html, history_df])

        # Compare tab
        @friendly
        def compare(profile_value, values, tod_value, dev):
            who = subject(profile_value, values)
            out = []
            for model in COMPARE_MODELS:
                try:
                    items = api.recommend(
                        **who, time_of_day=tod_value, device=dev, k=10, model=model
                    )["items"]
                    out.append(
                        gr.Gallery(gallery_value(posters, items), label=f"{model}", visible=True)
                    )
                except Exception as error:  # a model missing from a degraded bundle
                    log.info("compare %s: %s", model, error)
                    out.append(gr.Gallery([], label=f"{model}: not available", visible=True))
            return out

        compare_btn.click(compare, [profile, picks, tod, device], compare_galleries)

        # Evaluation, A/B and context tabs
        def evaluation():
            return evaluation_view(cfg.bundle_dir)

        @friendly
        def ab_view():
            result = api.ab_test_results()
            return (
                *online_view(result.get("online") or {}),
                result.get("offline") or {"note": "no offline A/B results in this bundle"},
            )

        @friendly
        def context_view(profile_value, values, dev):
            who = subject(profile_value, values)
            out = []
            for t in TIMES_OF_DAY:
                items = api.recommend(**who, time_of_day=t, device=dev, k=10)["items"]
                out.append(gallery_value(posters, items))
            return [*out, report_images(cfg.bundle_dir, "context")]

        demo.load(evaluation, None, [eval_md, eval_df, eval_plots])
        ab_refresh.click(ab_view, None, [ab_md, ab_df, ab_json])
        demo.load(ab_view, None, [ab_md, ab_df, ab_json])
        ctx_btn.click(context_view, [profile, picks, device], [*ctx_galleries, ctx_plots])
    return demo


def _date(timestamp: int) -> str:
    return datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%d")


def report_images(bundle_dir: Path | None, keyword: str | None = None) -> list[tuple[str, str]]:
    """The bundle's reports/*.png (those whose name holds ``keyword``, when given)."""
    if bundle_dir is None or not (bundle_dir / "reports").is_dir():
        return []
    images = sorted((bundle_dir / "reports").glob("*.png"))
    if keyword:
        images = [p for p in images if keyword in p.stem]
    return [(str(p), p.stem.replace("_", " ")) for p in images]


def evaluation_view(bundle_dir: Path | None):
    """Metrics table (protocol S ranking, protocol R RMSE) from the bundle's metrics.json."""
    metrics = {}
    if bundle_dir is not None and (bundle_dir / "metrics.json").exists():
        metrics = json.loads((bundle_dir / "metrics.json").read_text())
    s = (metrics.get("protocols") or {}).get("S") or {}
    r = (metrics.get("protocols") or {}).get("R") or {}
    rows = []
    for model, values in (s.get("models") or {}).items():
        ci = values.get("ndcg@10_ci") or [None, None]
        rows.append(
            {
                "model": model,
                **{k: values.get(k) for k in ("hr@10", "ndcg@10", "mrr@10", "recall@10")},
                "ndcg@10 95% CI": f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci[0] is not None else "",
                "rmse (R)": (r.get("models") or {}).get(model, {}).get("rmse"),
            }
        )
    for model, values in (r.get("models") or {}).items():
        if model not in (s.get("models") or {}):
            rows.append({"model": model, "rmse (R)": values.get("rmse")})
    text = (
        f"### Offline evaluation on {metrics.get('dataset', 'the bundle data set')}\n"
        f"Protocol S: leave-last-out by time, full-catalogue ranking, {s.get('n_users', '?')} users. "
        f"Protocol R: rating prediction, {r.get('n_test', '?')} test ratings."
        if metrics
        else "### No metrics.json in this bundle"
    )
    if metrics.get("note"):
        text += f"\n\n*{metrics['note']}*"
    frame = pd.DataFrame(rows).round(4) if rows else pd.DataFrame({"model": []})
    return text, frame, report_images(bundle_dir)


def online_view(online: dict):
    """Markdown verdict and a per-arm table of the live test."""
    rows = []
    for arm, label in (("A", "A: hybrid, no context"), ("B", "B: hybrid with context")):
        a = online.get(arm) or {}
        ci = a.get("ctr_ci")
        rows.append(
            {
                "arm": label,
                "visitors": a.get("visitors", 0),
                "impressions": a.get("impressions", 0),
                "clicks + likes": a.get("clicks", 0),
                "CTR": None if a.get("ctr") is None else round(a["ctr"], 4),
                "95% CI": f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "",
            }
        )
    diff = online.get("difference") or {}
    if diff.get("b_minus_a") is None:
        verdict = "Not enough live data yet: both arms need impressions."
    else:
        lo, hi = diff["ci"]
        verdict = f"B - A = {diff['b_minus_a']:+.4f}, 95% CI [{lo:+.4f}, {hi:+.4f}]" + (
            ": **no significant difference** (the interval includes zero)."
            if diff.get("includes_zero")
            else "."
        )
    text = (
        "### Online A/B test\nEach visitor session is assigned an arm by a stable hash. "
        "Unit: a shown (visitor, movie) pair; positive: a click or a 👍.\n\n" + verdict
    )
    return text, pd.DataFrame(rows)


API_HELP = """
### Use the API
Every function is a REST route under `/api/` (OpenAPI schema at `/api/openapi.json`, docs at
`/api/docs`) and a named Gradio endpoint ("Use via API" in the footer); both return the same JSON.

```bash
curl "$URL/api/recommend?user_id=1&time_of_day=evening&device=tv&k=5"
curl -X POST "$URL/api/recommend" -H 'content-type: application/json' \\
     -d '{"history": [1, 260, 1196], "time_of_day": "night", "device": "mobile", "k": 5}'
```

```python
from gradio_client import Client
client = Client(URL)
client.predict(user_id=1, time_of_day="evening", device="tv", k=5, api_name="/recommend")
```
"""

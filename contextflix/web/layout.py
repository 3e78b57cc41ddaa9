"""The page's components, laid out once: top bar, banner, tabs. No behaviour here; ui.py wires
the callbacks to the ``Page`` this returns."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from contextflix.web.context import DEVICES, TIMES_OF_DAY
from contextflix.web.rows import N_ROWS, NEW_VISITOR
from contextflix.web.views import OURS, PEER

COMPARE_MODELS = (
    "hybrid",
    "hybrid_no_context",
    "collaborative",
    "content",
    "sequential",
    "popularity",
)
STAR_CHOICES = [5.0, 4.0, 3.0, 2.0, 1.0]
TASTE_KEY = "contextflix-taste"


def poster_row(label: str, **kwargs) -> gr.Gallery:
    """A horizontally scrolling row of posters (styled by .cf-row in style.css)."""
    return gr.Gallery(
        label=label,
        elem_classes="cf-row",
        columns=12,
        allow_preview=False,
        height="auto",
        object_fit="cover",
        buttons=[],
        **kwargs,
    )


@dataclass
class Page:
    """Every component a callback reads or writes."""

    demo: gr.Blocks
    session: gr.State
    taste: gr.BrowserState
    hidden: gr.State
    rows_state: gr.State
    hero_item: gr.State
    current: gr.State
    similar_state: gr.State
    results_state: gr.State
    version: gr.State
    timer: gr.Timer
    home_tab: gr.Tab
    new_tab: gr.Tab
    open_tab: gr.State
    profile_tab: gr.Tab
    compare_tab: gr.Tab
    eval_tab: gr.Tab
    ab_tab: gr.Tab
    ctx_tab: gr.Tab
    profile: gr.Dropdown
    tod: gr.Dropdown
    device: gr.Dropdown
    banner: gr.HTML
    tabs: gr.Tabs
    hero: gr.HTML
    hero_more: gr.Button
    hero_like: gr.Button
    hero_dislike: gr.Button
    taste_text: gr.HTML
    undo: gr.Button
    detail: gr.Column
    detail_text: gr.HTML
    like: gr.Button
    dislike: gr.Button
    stars: gr.Radio
    close: gr.Button
    similar: gr.Gallery
    rows: list[gr.Gallery]
    search: gr.Textbox
    genre: gr.Dropdown
    pick_stars: gr.Radio
    results: gr.Gallery
    picks: gr.Gallery
    go: gr.Button
    clear: gr.Button
    profile_md: gr.Markdown
    prefs: gr.HTML
    history: gr.Dataframe
    compare_md: gr.Markdown
    compare: gr.HTML
    eval_md: gr.Markdown
    eval_df: gr.Markdown
    eval_bars: gr.BarPlot
    eval_context: gr.LinePlot
    eval_images: gr.HTML
    ab_md: gr.Markdown
    ab_refresh: gr.Button
    ab_df: gr.Dataframe
    ab_offline: gr.Markdown
    ctx_md: gr.Markdown
    ctx_rows: gr.HTML
    ctx_images: gr.HTML


SESSION_TTL_S = 6 * 3600  # a page's server-side state is dropped after this long unused


def build_layout(genres: list[str], timer_active: bool, footer: str, api_help: str) -> Page:
    """All components inside one ``gr.Blocks``; call inside nothing, returns the page."""
    with gr.Blocks(title="ContextFlix") as demo:
        c: dict = {"demo": demo}
        c["session"] = gr.State({}, time_to_live=SESSION_TTL_S)
        # The visitor's reactions, in their own browser's storage. Gradio sends the "secret" to
        # every browser, so it protects nothing; a fixed one lets the picks outlive an app restart.
        c["taste"] = gr.BrowserState([], storage_key=TASTE_KEY, secret=TASTE_KEY)
        c["hidden"] = gr.State([], time_to_live=SESSION_TTL_S)
        c["rows_state"] = gr.State([], time_to_live=SESSION_TTL_S)
        c["hero_item"] = gr.State(None, time_to_live=SESSION_TTL_S)
        c["current"] = gr.State(None, time_to_live=SESSION_TTL_S)
        c["similar_state"] = gr.State([], time_to_live=SESSION_TTL_S)
        c["results_state"] = gr.State([], time_to_live=SESSION_TTL_S)
        c["version"] = gr.State(0, time_to_live=SESSION_TTL_S)
        c["open_tab"] = gr.State("home", time_to_live=SESSION_TTL_S)
        c["timer"] = gr.Timer(3, active=timer_active)

        with gr.Row(elem_classes="cf-topbar", equal_height=True):
            gr.HTML(
                '<div class="cf-logo">CONTEXT<span>FLIX</span></div>', elem_classes="cf-logo-wrap"
            )
            c["profile"] = gr.Dropdown(
                [("New visitor", NEW_VISITOR)],
                value=NEW_VISITOR,
                label="Who's watching?",
                elem_id="cf-profile",
                min_width=200,
                scale=2,
            )
            c["tod"] = gr.Dropdown(
                list(TIMES_OF_DAY),
                value="evening",
                label="Time of day",
                elem_id="cf-tod",
                min_width=120,
                scale=1,
            )
            c["device"] = gr.Dropdown(
                list(DEVICES),
                value="desktop",
                label="Device",
                elem_id="cf-device",
                min_width=120,
                scale=1,
            )
        c["banner"] = gr.HTML(elem_id="cf-banner")

        with gr.Tabs(elem_classes="cf-tabs") as tabs:
            c["tabs"] = tabs
            with gr.Tab("Home", id="home") as tab:
                c["home_tab"] = tab
                c["hero"] = gr.HTML(elem_id="cf-hero", elem_classes="cf-hero")
                with gr.Row(elem_classes="cf-actions"):
                    c["hero_more"] = gr.Button("More info", size="sm", elem_id="cf-hero-more")
                    c["hero_like"] = gr.Button("♥ Like", size="sm", elem_id="cf-hero-like")
                    c["hero_dislike"] = gr.Button(
                        "✕ Not for me", size="sm", elem_id="cf-hero-dislike"
                    )
                with gr.Row(elem_classes="cf-taste-row"):
                    c["taste_text"] = gr.HTML(elem_id="cf-taste")
                    c["undo"] = gr.Button(
                        "↶ Undo last rating",
                        size="sm",
                        elem_id="cf-undo",
                        visible=False,
                        scale=0,
                        min_width=160,
                    )
                with gr.Column(
                    visible=False, elem_classes="cf-detail", elem_id="cf-detail"
                ) as detail:
                    c["detail"] = detail
                    c["detail_text"] = gr.HTML(elem_id="cf-detail-text")
                    with gr.Row(elem_classes="cf-actions"):
                        c["like"] = gr.Button(
                            "♥ More like this", variant="primary", size="sm", elem_id="cf-like"
                        )
                        c["dislike"] = gr.Button("✕ Not for me", size="sm", elem_id="cf-dismiss")
                        c["stars"] = gr.Radio(
                            STAR_CHOICES,
                            value=None,
                            label="Your rating",
                            elem_id="cf-stars",
                            min_width=220,
                        )
                        c["close"] = gr.Button("Close", size="sm", elem_id="cf-close")
                    c["similar"] = poster_row("More like this", elem_id="cf-similar")
                c["rows"] = [
                    poster_row("", elem_id=f"cf-row-{n}", visible=False) for n in range(N_ROWS)
                ]

            with gr.Tab("New here?", id="new") as tab:
                c["new_tab"] = tab
                gr.Markdown(
                    "### Pick a few movies you like\nSearch or click posters; each pick "
                    "gets the rating below. Then get your recommendations."
                )
                with gr.Row():
                    c["search"] = gr.Textbox(
                        placeholder="Search titles, e.g. matrix",
                        label="Search",
                        elem_id="cf-search",
                        scale=3,
                        min_width=200,
                    )
                    c["genre"] = gr.Dropdown(
                        ["", *genres], value="", label="Genre", scale=1, min_width=140
                    )
                    c["pick_stars"] = gr.Radio(
                        STAR_CHOICES,
                        value=5.0,
                        scale=2,
                        min_width=220,
                        label="Your rating for the next pick (stars)",
                    )
                c["results"] = poster_row("Click to pick", elem_id="cf-results")
                c["picks"] = poster_row(
                    "Your picks (click to remove)", elem_id="cf-picks", visible=False
                )
                with gr.Row():
                    c["go"] = gr.Button(
                        "Get my recommendations", variant="primary", elem_id="cf-go"
                    )
                    c["clear"] = gr.Button("Start over", elem_id="cf-clear")

            with gr.Tab("Profile", id="profile") as tab:
                c["profile_tab"] = tab
                c["profile_md"] = gr.Markdown()
                c["prefs"] = gr.HTML()
                c["history"] = gr.Dataframe(
                    label="Recent ratings (device simulated)",
                    interactive=False,
                    wrap=True,
                    visible=False,
                )

            with gr.Tab("Compare models", id="compare") as tab:
                c["compare_tab"] = tab
                c["compare_md"] = gr.Markdown(
                    "The same profile and context, ranked by each model on its own."
                )
                c["compare"] = gr.HTML(elem_id="cf-compare")

            with gr.Tab("Evaluation", id="evaluation") as tab:
                c["eval_tab"] = tab
                c["eval_md"] = gr.Markdown()
                c["eval_df"] = gr.Markdown(elem_id="cf-metrics", elem_classes="cf-metrics")
                c["eval_bars"] = gr.BarPlot(
                    x="model",
                    y="NDCG@10",
                    color="measured by",
                    color_map={OURS: "#e50914", PEER: "#8c8c8c"},
                    title="NDCG@10 by model: ours and the peers' (identical split)",
                    y_lim=[0, None],
                    sort="-y",
                    height=320,
                    visible=False,
                )
                c["eval_context"] = gr.LinePlot(
                    x="time of day",
                    y="NDCG@10",
                    color="model",
                    title="NDCG@10 by the target's time of day (hover for values)",
                    sort=list(TIMES_OF_DAY),
                    y_lim=[0, None],
                    height=360,
                    visible=False,
                )
                c["eval_images"] = gr.HTML(elem_classes="cf-reports")

            with gr.Tab("A/B test", id="ab") as tab:
                c["ab_tab"] = tab
                c["ab_md"] = gr.Markdown()
                c["ab_refresh"] = gr.Button("Refresh live results", size="sm")
                c["ab_df"] = gr.Dataframe(
                    label="Live test (this app's visitors)", interactive=False
                )
                c["ab_offline"] = gr.Markdown()

            with gr.Tab("Context impact", id="context") as tab:
                c["ctx_tab"] = tab
                c["ctx_md"] = gr.Markdown(
                    "How the same profile's top picks change with the "
                    "time of day (hybrid with context)."
                )
                c["ctx_rows"] = gr.HTML(elem_id="cf-ctx")
                c["ctx_images"] = gr.HTML(elem_classes="cf-reports")

            with gr.Tab("API", id="api"):
                gr.Markdown(api_help)

        gr.HTML(f'<div class="cf-footer">{footer}</div>')
    return Page(**c)

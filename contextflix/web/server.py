"""Wiring for ``app.py``: settings, where the bundle comes from, and the one ASGI app that serves
the page, the Gradio API and the REST API on the same port.

Serving never imports training: without a bundle, ``app.py`` serves popularity at once and the
first start trains in a child process (``contextflix.web.startup``)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import yaml
from fastapi import FastAPI

from contextflix.web.api import Api, publish_only_the_api, short_argument_errors
from contextflix.web.events import EventLog
from contextflix.web.identity import VisitorCookieMiddleware, VisitorIds
from contextflix.web.limits import ApiConfig
from contextflix.web.posters import PosterCache
from contextflix.web.rest import install_error_handlers, install_http_layers, rest_router
from contextflix.web.startup import Serving, Training, pipeline_command
from contextflix.web.tmdb import API_URL, ATTRIBUTION, IMAGE_URL, TmdbPosters
from contextflix.web.ui import UiConfig, build_ui

log = logging.getLogger("contextflix.app")

STYLE = Path(__file__).with_name("style.css")
# Dark theme: the same value for light and dark mode, so the page is dark whatever the
# visitor's system preference.
THEME_VARS = {
    "body_background_fill": "#141414",
    "body_text_color": "#e5e5e5",
    "body_text_color_subdued": "#a3a3a3",
    "background_fill_primary": "#181818",
    "background_fill_secondary": "#202020",
    "block_background_fill": "#181818",
    "block_border_color": "#2a2a2a",
    "block_label_background_fill": "#181818",
    "block_label_text_color": "#e5e5e5",
    "block_title_text_color": "#e5e5e5",
    "border_color_primary": "#333333",
    "input_background_fill": "#262626",
    "input_border_color": "#3a3a3a",
    "button_primary_background_fill": "#e50914",
    "button_primary_background_fill_hover": "#f6121d",
    "button_primary_text_color": "#ffffff",
    "button_secondary_background_fill": "#2f2f2f",
    "button_secondary_background_fill_hover": "#3d3d3d",
    "button_secondary_text_color": "#ffffff",
    "color_accent_soft": "#3a0d10",
    "link_text_color": "#ff4d57",
    "table_even_background_fill": "#1c1c1c",
    "table_odd_background_fill": "#222222",
    "checkbox_label_background_fill": "#262626",
    "checkbox_label_background_fill_selected": "#c11119",
    "checkbox_label_text_color_selected": "#ffffff",
    "panel_background_fill": "#181818",
}


def theme() -> gr.themes.Base:
    base = gr.themes.Base(
        primary_hue=gr.themes.colors.red,
        neutral_hue=gr.themes.colors.neutral,
        font=["Helvetica Neue", "Helvetica", "Arial", "sans-serif"],
        font_mono=["Menlo", "monospace"],
    )
    values = {"color_accent": "#e50914"}  # the one variable without a _dark twin
    for name, value in THEME_VARS.items():
        values[name] = value
        values[f"{name}_dark"] = value
    return base.set(**values)


@dataclass
class Settings:
    bundle_spec: str | None  # CONTEXTFLIX_BUNDLE
    hub_repo: str | None
    dataset: str
    artifacts: Path
    pipeline_config: str
    app_dir: Path
    host: str
    port: int
    profiles: int
    ab_split: float
    ab_salt: str
    events_hub_dataset: str | None
    events_every: float
    first_start_profile: str = "quick"
    tmdb_key: str | None = None  # TMDB_API_KEY (a Space secret): real posters
    tmdb_api_url: str = API_URL
    tmdb_image_url: str = IMAGE_URL
    tmdb_timeout: float = 4.0

    @property
    def local_bundle(self) -> Path:
        return self.artifacts / self.dataset

    @classmethod
    def load(cls, path: str | Path = "configs/app.yaml") -> Settings:
        """configs/app.yaml (if present), then environment variables on top."""
        raw: dict[str, Any] = {}
        if Path(path).exists():
            raw = yaml.safe_load(Path(path).read_text()) or {}
        bundle, server = raw.get("bundle") or {}, raw.get("server") or {}
        ab, events = raw.get("ab") or {}, raw.get("events") or {}
        first_start, tmdb = raw.get("first_start") or {}, raw.get("tmdb") or {}
        env = os.environ.get
        return cls(
            bundle_spec=env("CONTEXTFLIX_BUNDLE") or None,
            hub_repo=bundle.get("hub_repo"),
            dataset=bundle.get("dataset", "ml-latest-small"),
            artifacts=Path(bundle.get("artifacts", "artifacts")),
            pipeline_config=bundle.get("pipeline_config", "configs/pipeline.yaml"),
            app_dir=Path(env("CONTEXTFLIX_APP_DIR") or raw.get("app_dir", "artifacts/app")),
            host=env("GRADIO_SERVER_NAME") or server.get("name", "0.0.0.0"),
            port=int(env("GRADIO_SERVER_PORT") or server.get("port", 7860)),
            profiles=int(raw.get("profiles", 100)),
            ab_split=float(env("CONTEXTFLIX_AB_SPLIT") or ab.get("split", 0.5)),
            ab_salt=str(ab.get("salt", "contextflix-ab-v1")),
            events_hub_dataset=events.get("hub_dataset"),
            events_every=float(events.get("every_minutes", 10)),
            first_start_profile=str(first_start.get("profile", "quick")),
            tmdb_key=env("TMDB_API_KEY") or None,
            tmdb_api_url=env("TMDB_API_URL") or tmdb.get("api_url", API_URL),
            tmdb_image_url=env("TMDB_IMAGE_URL") or tmdb.get("image_url", IMAGE_URL),
            tmdb_timeout=float(tmdb.get("timeout_s", 4.0)),
        )


def _from_hub(spec: str) -> Path | None:
    try:
        from contextflix.hub import pull_bundle

        return pull_bundle(spec)
    except Exception as error:  # no network, no such repo: fall back, loudly
        log.warning(
            "could not pull bundle %s from the Hub (%s); trying the next source", spec, error
        )
        return None


def resolve_bundle(settings: Settings) -> Path | None:
    """CONTEXTFLIX_BUNDLE (folder or Hub id) -> configs' Hub repo -> artifacts/<dataset>/;
    None when there is none yet (the app then trains one: ``first_start``)."""
    spec = settings.bundle_spec
    if spec:
        if Path(spec).is_dir():
            log.info("bundle: %s (CONTEXTFLIX_BUNDLE)", spec)
            return Path(spec)
        found = _from_hub(spec)
        if found:
            log.info("bundle: %s from the Hub (CONTEXTFLIX_BUNDLE)", spec)
            return found
    if settings.hub_repo:
        found = _from_hub(settings.hub_repo)
        if found:
            log.info("bundle: %s from the Hub (configs/app.yaml)", settings.hub_repo)
            return found
    local = settings.local_bundle
    if (local / "manifest.json").exists():
        log.info("bundle: %s (local artifacts)", local)
        return local
    return None


def first_start(settings: Settings) -> Training:
    """The training a first start runs (not started): the pipeline command a user would type,
    with the profile configs/app.yaml names, writing artifacts/<dataset>/."""
    command = pipeline_command(
        settings.pipeline_config,
        settings.dataset,
        settings.first_start_profile,
        settings.local_bundle,
    )
    log.warning(
        "no bundle yet: serving popularity now and training the %s profile on %s in the "
        "background (once; cached in %s)",
        settings.first_start_profile,
        settings.dataset,
        settings.local_bundle,
    )
    return Training(
        command, settings.local_bundle, settings.app_dir / "training.log", on_ready=lambda _: None
    )


def _tmdb(settings: Settings, service: Any) -> TmdbPosters | None:
    """Real posters when TMDB_API_KEY is set; tmdb ids from the catalogue (links.csv)."""
    if not settings.tmdb_key:
        return None
    catalog = getattr(getattr(service, "bundle", None), "catalog", None)
    ids = {}
    if catalog is not None and "tmdb_id" in catalog.columns:
        known = catalog.dropna(subset=["tmdb_id"])
        ids = dict(zip(known["item_id"].astype(int), known["tmdb_id"].astype(int), strict=True))
    return TmdbPosters(
        settings.tmdb_key,
        settings.app_dir / "posters" / "tmdb",
        ids,
        api_url=settings.tmdb_api_url,
        image_url=settings.tmdb_image_url,
        timeout=settings.tmdb_timeout,
    )


def create_app(
    service: Any,
    settings: Settings,
    bundle_dir: Path | None = None,
    training: Training | None = None,
) -> FastAPI:
    """One FastAPI app: REST routes under /api/ and the Gradio page + API mounted at /.

    With ``training`` (a first start), the trained bundle replaces ``service`` when it is ready.
    """
    api_config = ApiConfig.load()
    events = EventLog(
        settings.app_dir / "events.sqlite",
        hub_repo=settings.events_hub_dataset,
        every_minutes=settings.events_every,
        limits=api_config.events,
    )
    api = Api(service, events)
    tmdb = _tmdb(settings, service)
    posters = PosterCache(settings.app_dir / "posters", tmdb=tmdb)
    if tmdb is not None:  # warm the cache with the posters most pages show
        tmdb.prefetch(api.movies(limit=200)["movies"])
    visitors = VisitorIds.from_folder(settings.app_dir)
    serving = Serving(api, bundle_dir, training)
    if training is not None:
        from contextflix.service import Recommender

        training.on_ready = lambda path: serving.swap(
            path, Recommender.from_bundle(path, batch_processes=api_config.batch_processes)
        )
    footer = "MovieLens data: GroupLens Research. Devices in the training data are simulated. " + (
        f"Posters: TMDB. {ATTRIBUTION}"
        if tmdb is not None
        else "Posters are generated from each movie's title, year and genres."
    )
    ui_config = UiConfig(
        posters=posters,
        events=events,
        serving=serving,
        ab_split=settings.ab_split,
        ab_salt=settings.ab_salt,
        n_profiles=settings.profiles,
        visitors=visitors,
        footer=footer,
    )
    demo = build_ui(api, ui_config)
    demo.queue(default_concurrency_limit=8, max_size=api_config.gradio_queue)
    demo.state_session_capacity = api_config.gradio_sessions  # each keeps its last inputs
    publish_only_the_api(demo)
    short_argument_errors(demo)

    app = FastAPI(
        title="ContextFlix API",
        description="Context-aware MovieLens recommendations with explanations.",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    install_error_handlers(app)
    app.add_middleware(VisitorCookieMiddleware, ids=visitors)
    install_http_layers(app, api, api_config)
    app.include_router(rest_router(api))
    allowed = [str(posters.folder.resolve())]
    if bundle_dir is not None:
        allowed.append(str(Path(bundle_dir).resolve() / "reports"))
    if training is not None:
        allowed.append(str(settings.local_bundle.resolve() / "reports"))
    return gr.mount_gradio_app(
        app,
        demo,
        path="/",
        theme=theme(),
        css_paths=[STYLE],
        js=FORCE_DARK_JS,
        allowed_paths=allowed,
        show_error=False,  # gr.Error messages still show; other errors never reach a visitor
        footer_links=["api", "gradio"],
        server_name=settings.host,
        server_port=settings.port,
        mcp_server=api_config.mcp_server,
    )


# Gradio switches to its dark palette when <body> has the "dark" class.
FORCE_DARK_JS = "() => { document.body.classList.add('dark'); }"

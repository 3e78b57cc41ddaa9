"""The tabs besides Home and "New here?": Profile, Compare models, Context impact, Evaluation and
A/B test. Each computes when it is opened (so the first page load does none of this work) and
follows the top bar while it is the open one; none is ever empty on arrival."""

from __future__ import annotations

from collections import Counter
from typing import Any

import gradio as gr

from contextflix.web import rows, views
from contextflix.web.api import Api, friendly
from contextflix.web.cards import caption, report_html, strip_html
from contextflix.web.context import TIMES_OF_DAY
from contextflix.web.layout import COMPARE_MODELS, Page


def wire_tabs(p: Page, api: Api, cfg: Any) -> None:
    posters, serving = cfg.posters, cfg.serving

    @friendly
    def show_profile(profile, taste):
        if not profile or profile == rows.NEW_VISITOR:
            text = "### You, this session\n" + (
                f"{len(taste)} ratings: " + ", ".join(caption(t) for t in taste)
                if taste
                else "No ratings yet: rate movies on **Home** or pick a few in **New here?**."
            )
            counts = Counter(g for t in taste or [] for g in t["genres"])
            total = sum(counts.values()) or 1
            prefs = {
                "genres": [
                    {"genre": g, "share": c / total, "count": c} for g, c in counts.most_common()
                ]
            }
            return text, views.preferences_html(prefs), gr.Dataframe(visible=False)
        uid = int(profile)
        history = api.user_history(uid, limit=50)
        text = (
            f"### User {uid}\n{history.get('total')} ratings; favourite genres below "
            "(share of ratings, count, mean rating)."
        )
        return (
            text,
            views.preferences_html(api.user_preferences(uid)),
            gr.Dataframe(views.history_frame(history), visible=True),
        )

    @friendly
    def compare(profile, taste, tod, dev):
        who = rows.subject(api, profile, taste)
        strips, missing = [], []
        for model in COMPARE_MODELS:
            try:
                items = api.recommend(**who, time_of_day=tod, device=dev, k=10, model=model)
                strips.append(strip_html(posters, model, items["items"], f"cf-compare-{model}"))
            except Exception:  # a model this bundle does not have
                missing.append(model)
        whom = f"user {profile}" if profile != rows.NEW_VISITOR else "you"
        text = (
            f"Each model on its own for {whom}, {rows.context_title(tod, dev)}. Change the "
            "profile or the context above and this tab follows."
        )
        if missing:
            text += f" Not in this bundle (yet): {', '.join(missing)}."
        return [text, "".join(strips)]

    @friendly
    def context_view(profile, taste, dev):
        who = rows.subject(api, profile, taste)
        model = "hybrid" if serving.personalised else "popularity"
        strips = [
            strip_html(posters, t, api.recommend(**who, time_of_day=t, device=dev, k=10,
                                                 model=model)["items"], f"cf-ctx-{t}")
            for t in TIMES_OF_DAY
        ]  # fmt: skip
        return ["".join(strips), report_html(views.report_images(serving.bundle_dir, "context"))]

    @friendly
    def evaluation():
        metrics = views.load_metrics(serving.bundle_dir)
        peers = views.load_peers(metrics.get("dataset"))
        bars, by_context = views.ndcg_bar_frame(metrics, peers), views.ndcg_context_frame(metrics)
        return (
            views.metrics_text(metrics),
            views.metrics_markdown(metrics, peers),
            gr.BarPlot(bars, visible=not bars.empty),
            gr.LinePlot(by_context, visible=not by_context.empty),
            report_html(views.report_images(serving.bundle_dir)),
        )

    @friendly
    def ab_view():
        result = api.ab_test_results()
        text, frame = views.online_view(result.get("online") or {})
        return (
            text,
            frame,
            "### Offline A/B (paired, protocol S test users)\n"
            + (views.offline_ab_text(result.get("offline") or {})),
        )

    # Each tab computes when it is opened, and follows the top bar while it is the open one.
    tabs = [
        ("profile", p.profile_tab, show_profile, [p.profile, p.taste],
         [p.profile_md, p.prefs, p.history]),
        ("compare", p.compare_tab, compare, [p.profile, p.taste, p.tod, p.device],
         [p.compare_md, p.compare]),
        ("context", p.ctx_tab, context_view, [p.profile, p.taste, p.device],
         [p.ctx_rows, p.ctx_images]),
        ("evaluation", p.eval_tab, evaluation, [],
         [p.eval_md, p.eval_df, p.eval_bars, p.eval_context, p.eval_images]),
        ("ab", p.ab_tab, ab_view, [], [p.ab_md, p.ab_df, p.ab_offline]),
    ]  # fmt: skip
    for name, tab, fn, inputs, outputs in tabs:
        tab.select(fn, inputs, outputs).then(constant(name), None, p.open_tab)
        if inputs:
            for control in (p.profile, p.tod, p.device):
                control.input(when_open(name, fn, len(outputs)), [p.open_tab, *inputs], outputs)
    p.home_tab.select(constant("home"), None, p.open_tab)
    p.ab_refresh.click(ab_view, None, [p.ab_md, p.ab_df, p.ab_offline])


def constant(value: Any):
    def get() -> Any:
        return value

    return get


def when_open(name: str, fn, n_outputs: int):
    """``fn`` while tab ``name`` is the open one; nothing otherwise (a closed tab recomputes
    when it is opened)."""

    def run(active: str, *args: Any) -> Any:
        return fn(*args) if active == name else [gr.skip()] * n_outputs

    return run


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

Share a page: `?user=ID`, `?movie=ID`, `?time_of_day=night&device=tv` open it in that state.
"""

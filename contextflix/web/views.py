"""View rendering: the HTML fragments and tables of the page, from the API's JSON.

Pure functions of plain data (no Gradio), so what a visitor reads is unit-testable; every
string from the catalogue is escaped.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html import escape
from pathlib import Path

import pandas as pd
import yaml

from contextflix.evaluation.tables import metrics_table
from contextflix.web.posters import clean_title
from contextflix.web.rows import context_title

SOURCE_LABELS = {
    "session": "You, just now",
    "collaborative": "People like you",
    "content": "Your taste",
    "sequential": "What you watched last",
    "popularity": "Popular",
    "context": "Right now",
}
ARM_LABELS = {"A": "A: hybrid without context", "B": "B: hybrid with context"}


def reasons_html(item: dict) -> str:
    """The "why" of one recommendation: this session's reactions first, then strongest first."""
    reasons = sorted(
        item.get("reasons") or [],
        key=lambda r: (r.get("source") != "session", -(r.get("weight") or 0)),
    )
    if len(reasons) == 1 and reasons[0].get("text") == item.get("explanation"):
        reasons = []  # already said in the explanation line
    rows = "".join(
        f'<li><span class="cf-chip cf-src-{escape(str(r.get("source", "")))}">'
        f"{escape(SOURCE_LABELS.get(r.get('source', ''), str(r.get('source', '')).title()))}</span>"
        f" {escape(str(r.get('text', '')))}</li>"
        for r in reasons
    )
    return f'<ul class="cf-reasons">{rows}</ul>' if rows else ""


def detail_html(item: dict, context: dict | None = None, your_rating: float | None = None) -> str:
    year = item.get("year")
    genres = " ".join(f'<span class="cf-genre">{escape(g)}</span>' for g in item.get("genres", []))
    meta = [str(year) if year else "", f"#{item['rank']} for you" if item.get("rank") else ""]
    if your_rating is not None:
        meta.append(f"you: {your_rating:g}★")
    ctx = ""
    if context and (context.get("time_of_day") or context.get("device")):
        where = context_title(context.get("time_of_day"), context.get("device"))
        simulated = " (device simulated in training data)" if context.get("device") else ""
        ctx = f'<p class="cf-muted">Tuned to {escape(where)}{simulated}.</p>'
    why = item.get("explanation") or ""
    heading = "Why we picked it" if why else "About this movie"
    return (
        f'<div class="cf-detail-text"><h2>{escape(clean_title(item.get("title", "")))}</h2>'
        f'<p class="cf-meta">{" · ".join(m for m in meta if m)}</p><p>{genres}</p>'
        f'<h3>{heading}</h3><p class="cf-expl">{escape(why)}</p>'
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


def banner_html(message: str | None) -> str:
    """The first-start banner ("the personalised models are training: ..."); empty when none."""
    if not message:
        return ""
    return f'<div class="cf-banner" role="status">{escape(message)}</div>'


def taste_html(taste: list[dict]) -> str:
    """The session's reactions, newest first, as a sentence the visitor can check."""
    if not taste:
        return ""
    words = {"like": "♥", "dislike": "✕", "stars": "★", "pick": "✓"}
    parts = [
        f"{words.get(t['how'], '')} {escape(clean_title(t['title']))}"
        + (f" {t['rating']:g}★" if t["how"] in ("stars", "pick") else "")
        for t in reversed(taste[-8:])
    ]
    more = f" and {len(taste) - 8} more" if len(taste) > 8 else ""
    return f'<p class="cf-taste">This session you rated: {", ".join(parts)}{more}.</p>'


def preferences_html(prefs: dict) -> str:
    genres = prefs.get("genres", [])[:10]
    top = max((g["share"] for g in genres), default=1e-9) or 1e-9
    rows = "".join(
        f'<div class="cf-bar"><span>{escape(g["genre"])}</span>'
        f'<div class="cf-bar-track"><div class="cf-bar-fill" style="width:{100 * g["share"] / top:.0f}%"></div></div>'
        f'<span class="cf-muted">{g["count"]}'
        + (f" · ★ {g['mean_rating']:.1f}" if g.get("mean_rating") else "")
        + "</span></div>"
        for g in genres
    )
    return f'<div class="cf-bars">{rows or "<p>No ratings yet.</p>"}</div>'


def history_frame(history: dict) -> pd.DataFrame:
    rows = [
        [
            clean_title(h["title"]),
            h.get("year"),
            h["rating"],
            datetime.fromtimestamp(int(h["timestamp"]), UTC).strftime("%Y-%m-%d"),
            h["time_of_day"],
            h["device"],
        ]
        for h in history["items"]
    ]
    return pd.DataFrame(rows, columns=["title", "year", "rating", "date", "time of day", "device"])


# --- evaluation ------------------------------------------------------------------------------


def load_metrics(bundle_dir: Path | None) -> dict:
    path = bundle_dir / "metrics.json" if bundle_dir is not None else None
    return json.loads(path.read_text()) if path is not None and path.exists() else {}


PEERS = Path(__file__).resolve().parents[2] / "configs" / "peers.yaml"
OURS = "ContextFlix (this bundle)"
PEER = "peer, measured on the identical split"


def load_peers(dataset: str | None, path: Path = PEERS) -> dict:
    """The peers' figures for ``dataset`` ({"S": {peer: metrics}, "R": {...}}); {} if none."""
    if not dataset or not path.exists():
        return {}
    return (yaml.safe_load(path.read_text()) or {}).get(dataset) or {}


def metrics_markdown(metrics: dict, peers: dict | None = None) -> str:
    """The project's one metrics table (``metrics_table``, as in the report and the model card),
    then the peers' figures on the identical split, so the two can be read side by side."""
    if not ((metrics.get("protocols") or {}).get("S") or {}).get("models"):
        return metrics_table(metrics)
    text = metrics_table(metrics)
    peers = peers or {}
    if peers.get("S"):
        text += (
            "\n\n**Peers, measured on the identical split** (their own code, the same split "
            "files):\n\n| peer | HR@10 | NDCG@10 | MRR@10 |\n|---|---|---|---|\n"
        )
        text += "\n".join(
            f"| {name} | "
            + " | ".join(_figure(v.get(k)) for k in ("hr@10", "ndcg@10", "mrr@10"))
            + " |"
            for name, v in peers["S"].items()
        )
    if peers.get("R"):
        text += "\n\n| peer (protocol R) | RMSE |\n|---|---|\n"
        text += "\n".join(
            f"| {name} | {_figure(v.get('rmse'))} |" for name, v in peers["R"].items()
        )
    return text


def _figure(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def metrics_text(metrics: dict) -> str:
    if not metrics:
        return (
            "### No evaluation yet\nThis bundle has no metrics.json: "
            "`python -m training evaluate --bundle DIR --update-bundle` writes it."
        )
    s = (metrics.get("protocols") or {}).get("S") or {}
    r = (metrics.get("protocols") or {}).get("R") or {}
    text = (
        f"### Offline evaluation on {metrics.get('dataset', 'the bundle data set')}\n"
        f"Protocol S: leave-last-out by time, full-catalogue ranking, {s.get('n_users', '?')} "
        f"users. Protocol R: rating prediction, {r.get('n_test', '?')} test ratings."
    )
    text += (
        "\n\nPeers: other libraries run by their own code on split files byte-identical to "
        "ours (same users, same test targets), so their figures and ours are measured on the "
        "identical split."
    )
    if metrics.get("note"):
        text += f"\n\n*{metrics['note']}*"
    return text


def ndcg_bar_frame(metrics: dict, peers: dict | None = None) -> pd.DataFrame:
    """NDCG@10 per model, ours and the peers', for an interactive bar chart."""
    models = ((metrics.get("protocols") or {}).get("S") or {}).get("models") or {}
    rows = [{"model": m, "NDCG@10": v["ndcg@10"], "measured by": OURS}
            for m, v in models.items() if "ndcg@10" in v]  # fmt: skip
    if rows:
        rows += [{"model": m, "NDCG@10": v["ndcg@10"], "measured by": PEER}
                 for m, v in ((peers or {}).get("S") or {}).items() if "ndcg@10" in v]  # fmt: skip
    return pd.DataFrame(rows)


def ndcg_context_frame(metrics: dict, dimension: str = "time_of_day") -> pd.DataFrame:
    """NDCG@10 per model and context level, for an interactive chart."""
    by_context = ((metrics.get("protocols") or {}).get("S") or {}).get("by_context") or {}
    rows = [
        {"model": model, dimension.replace("_", " "): level, "NDCG@10": cell.get("ndcg@10")}
        for model, dims in by_context.items()
        for level, cell in (dims.get(dimension) or {}).items()
    ]
    return pd.DataFrame(rows)


def report_images(bundle_dir: Path | None, keyword: str | None = None) -> list[tuple[str, str]]:
    """The bundle's reports/*.png (those whose name holds ``keyword``), with a caption each."""
    if bundle_dir is None or not (bundle_dir / "reports").is_dir():
        return []
    images = sorted((bundle_dir / "reports").glob("*.png"))
    if keyword:
        images = [p for p in images if keyword in p.stem]
    return [(str(p), p.stem.replace("_", " ")) for p in images]


def online_view(online: dict) -> tuple[str, pd.DataFrame]:
    """Markdown verdict and a per-arm table of the live test."""
    rows = []
    for arm, label in ARM_LABELS.items():
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
    discounted = online.get("discounted") or {}
    if discounted.get("visitors"):
        verdict += (
            f"\n\n{discounted['visitors']} visitor(s) left out of these figures: "
            f"{discounted.get('rule', 'bot-like behaviour')}."
        )
    if discounted.get("refused_writes"):
        verdict += f" {discounted['refused_writes']} event writes refused by the rate limits."
    text = (
        "### Online A/B test\nEach visitor is assigned an arm by a stable hash of their "
        "visitor cookie. Arm A is served the hybrid without context, arm B the hybrid with "
        "context; only their own rows count (top picks and genre rows). Unit: a shown "
        "(visitor, movie) pair; positive: a click or a like.\n\n" + verdict
    )
    return text, pd.DataFrame(rows)


def offline_ab_text(offline: dict) -> str:
    if not offline:
        return "No offline A/B results in this bundle."
    return "```json\n" + json.dumps(offline, indent=2)[:4000] + "\n```"

"""Posters as page elements: gallery values, <img> tags with alt text, poster strips and report
figures. Every image the page shows comes from here, so each has its alt text."""

from __future__ import annotations

from html import escape
from pathlib import Path

from contextflix.web.posters import PosterCache, clean_title


def file_url(path: Path) -> str:
    return f"/gradio_api/file={path}"


def gallery_value(posters: PosterCache, items: list[dict]) -> list[tuple[str, str]]:
    """(poster, caption) pairs; the caption is also the image's alt text."""
    return [(str(posters.for_item(it)), caption(it)) for it in items]


def caption(item: dict) -> str:
    year = f" ({item['year']})" if item.get("year") else ""
    return f"{clean_title(item.get('title', ''))}{year}"


def strip_html(posters: PosterCache, title: str, items: list[dict], elem_id: str) -> str:
    """A row of posters to look at (no clicks), as plain HTML: lighter than a gallery."""
    cards = "".join(
        f'<img src="{escape(file_url(posters.for_item(it)))}" alt="{escape(caption(it))}"'
        f' title="{escape(caption(it))}" loading="lazy">'
        for it in items
    )
    # focusable, so the row scrolls with the keyboard too
    return (
        f'<section class="cf-strip" id="{elem_id}"><h3>{escape(title)}</h3>'
        f'<div tabindex="0" role="group" aria-label="{escape(title)}">{cards}</div></section>'
    )


def poster_img(posters: PosterCache, item: dict, css: str) -> str:
    path = posters.for_item(item, large=True)
    return f'<img class="{css}" src="{escape(file_url(path))}" alt="Poster of {escape(caption(item))}">'


def report_html(images: list[tuple[str, str]]) -> str:
    """Report plots at full width, each with its caption as alt text and a link to the file."""
    return "".join(
        f'<figure class="cf-report"><a href="{escape(file_url(Path(path)))}" target="_blank">'
        f'<img src="{escape(file_url(Path(path)))}" alt="{escape(name)} plot"></a>'
        f"<figcaption>{escape(name)}</figcaption></figure>"
        for path, name in images
    )

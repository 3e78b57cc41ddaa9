"""Movie posters: real ones from TMDB when a key is set (``contextflix.web.tmdb``), otherwise and on
any failure a deterministic poster drawn from the title, year and genres (MovieLens ships no
artwork, and a page must never show a broken image).

Generated posters are cached on disk (one PNG per movie id and size), drawn once per machine.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:
    from contextflix.web.tmdb import TmdbPosters

SIZE = (240, 360)  # 2:3, the usual poster ratio

# One colour pair per MovieLens genre: the poster's gradient comes from its first two genres.
GENRE_COLOURS: dict[str, tuple[str, str]] = {
    "Action": ("#b3121b", "#2b0406"),
    "Adventure": ("#c56a12", "#2a1503"),
    "Animation": ("#1c9bd6", "#05233a"),
    "Children": ("#f2b705", "#3a2a00"),
    "Comedy": ("#f07c1b", "#3b1a02"),
    "Crime": ("#4a4a4a", "#0b0b0b"),
    "Documentary": ("#4d8f5a", "#0d2412"),
    "Drama": ("#6b2fa3", "#1a0830"),
    "Fantasy": ("#8e44ad", "#1e0b2a"),
    "Film-Noir": ("#3c3c3c", "#000000"),
    "Horror": ("#7a0010", "#0a0002"),
    "IMAX": ("#0f6fa8", "#021623"),
    "Musical": ("#d6336c", "#33040f"),
    "Mystery": ("#2c3e70", "#070c1c"),
    "Romance": ("#e0457b", "#3a0717"),
    "Sci-Fi": ("#14a39a", "#02211f"),
    "Thriller": ("#8c1c13", "#140302"),
    "War": ("#6b6b3a", "#15150a"),
    "Western": ("#a0522d", "#24100a"),
}
DEFAULT_COLOURS = ("#555a66", "#101218")
FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation")


@lru_cache(maxsize=16)
def _font(size: int, bold: bool = True) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """A TrueType font where the system has one; Pillow's bundled font otherwise (Spaces)."""
    names = ("DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf") if bold else ("DejaVuSans.ttf",)
    for folder in FONT_DIRS:
        for name in names:
            path = Path(folder) / name
            if path.exists():
                return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


def _rgb(colour: str) -> tuple[int, int, int]:
    colour = colour.lstrip("#")
    return int(colour[0:2], 16), int(colour[2:4], 16), int(colour[4:6], 16)


def _gradient(size: tuple[int, int], top: str, bottom: str) -> Image.Image:
    """Vertical gradient; drawn line by line, which is fast enough for a 360-line poster."""
    width, height = size
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    (r1, g1, b1), (r2, g2, b2) = _rgb(top), _rgb(bottom)
    for y in range(height):
        t = y / (height - 1)
        colour = (int(r1 + (r2 - r1) * t), int(g1 + (g2 - g1) * t), int(b1 + (b2 - b1) * t))
        draw.line([(0, y), (width, y)], fill=colour)
    return image


def clean_title(title: str) -> str:
    """MovieLens titles carry the year and move articles to the end ("Matrix, The (1999)")."""
    title = title.strip()
    if title.endswith(")") and "(" in title and title[-5:-1].isdigit():
        title = title[: title.rfind("(")].strip()
    for article in ("The", "A", "An", "Les", "La", "Le", "Il", "Das", "Die", "El"):
        suffix = f", {article}"
        if title.endswith(suffix):
            return f"{article} {title[: -len(suffix)]}"
    return title


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: float) -> list[str]:
    """Greedy word wrap by measured width (character counts misjudge wide letters)."""
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def draw_poster(
    title: str, year: int | None, genres: Sequence[str], size: tuple[int, int] = SIZE
) -> Image.Image:
    """A poster: genre-coloured gradient, a seeded pattern, the title, year and genres."""
    genres = [g for g in genres if g and g != "(no genres listed)"]
    first = GENRE_COLOURS.get(genres[0], DEFAULT_COLOURS) if genres else DEFAULT_COLOURS
    second = GENRE_COLOURS.get(genres[1], first) if len(genres) > 1 else first
    image = _gradient(size, first[0], second[1])
    width, height = size
    draw = ImageDraw.Draw(image, "RGBA")

    # A few translucent circles seeded by the title, so posters of one genre still differ.
    seed = hashlib.sha256(title.encode()).digest()
    for i in range(4):
        x = seed[i * 3] / 255 * width
        y = seed[i * 3 + 1] / 255 * height * 0.7
        r = 30 + seed[i * 3 + 2] / 255 * width * 0.5
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 255, 18 + i * 6))

    # Bottom shade keeps the text readable on any colour.
    for y in range(height // 2, height):
        alpha = int(200 * (y - height // 2) / (height // 2))
        draw.line([(0, y), (width, y)], fill=(0, 0, 0, alpha))

    scale = width / SIZE[0]
    margin = int(16 * scale)
    draw.text((margin, margin), "CF", font=_font(int(18 * scale)), fill="#e50914")

    name = clean_title(title).upper()
    for font_size in (30, 26, 22, 19, 16):
        font = _font(int(font_size * scale))
        lines = _wrap(name, font, width - 2 * margin)
        if len(lines) <= 4 and all(font.getlength(line) <= width - 2 * margin for line in lines):
            break
    lines = lines[:4]
    line_height = int(font_size * scale * 1.15)
    y = height - margin - int(44 * scale) - line_height * len(lines)
    for line in lines:
        draw.text((margin, y), line, font=font, fill="white")
        y += line_height
    small = _font(int(13 * scale), bold=False)
    meta = " · ".join(genres[:3]) or "Movie"
    draw.text((margin, height - margin - int(36 * scale)), str(year or ""), font=small, fill="#ddd")
    draw.text((margin, height - margin - int(18 * scale)), meta, font=small, fill="#bbb")
    return image


class PosterCache:
    """Posters on disk: TMDB's when cached, else drawn on first use; what the page shows."""

    def __init__(self, folder: str | Path, tmdb: TmdbPosters | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.tmdb = tmdb

    def path(
        self, item_id: int, title: str, year: int | None, genres: Sequence[str], large: bool = False
    ) -> Path:
        size = (SIZE[0] * 2, SIZE[1] * 2) if large else SIZE
        target = self.folder / f"{int(item_id)}{'-lg' if large else ''}.png"
        if not target.exists():
            tmp = target.with_name(f"{target.stem}.{uuid.uuid4().hex}.tmp")  # unique per writer
            draw_poster(title, year, genres, size).save(tmp, format="PNG", optimize=True)
            tmp.replace(target)  # atomic: concurrent sessions never read a half-written file
        return target

    def for_item(self, item: dict, large: bool = False) -> Path:
        """Poster of a JSON item of the API (item_id, title, year, genres): the real one when
        TMDB's is on disk (else it is fetched in the background for next time)."""
        real = self.tmdb.poster(item) if self.tmdb is not None else None
        if real is not None:
            return real
        return self.path(
            item["item_id"],
            item.get("title", ""),
            item.get("year"),
            item.get("genres") or [],
            large,
        )

"""A visitor's context from their own request: device from the User-Agent, time of day from the
browser's clock (the server's clock is in the wrong time zone for most visitors)."""

from __future__ import annotations

import re

TIMES_OF_DAY = ("morning", "afternoon", "evening", "night")
DEVICES = ("mobile", "tablet", "desktop", "tv")

_TV = re.compile(
    r"smart-?tv|googletv|appletv|hbbtv|netcast|web0s|webos.*tv|tizen.*tv|crkey|roku|bravia"
    r"|aft[a-z]{1,3}\b|\btv\b",
    re.I,
)
_TABLET = re.compile(r"ipad|tablet|kindle|silk|playbook|android(?!.*mobile)", re.I)
_MOBILE = re.compile(r"mobi|iphone|ipod|android.*mobile|windows phone|blackberry|opera mini", re.I)


def device_from_user_agent(user_agent: str | None) -> str:
    """mobile, tablet, tv or desktop (the default, also for an empty or unknown agent)."""
    agent = user_agent or ""
    if _TV.search(agent):
        return "tv"
    if _TABLET.search(agent):
        return "tablet"
    if _MOBILE.search(agent):
        return "mobile"
    return "desktop"


def time_of_day_from_hour(hour: int) -> str:
    """The protocol's buckets: morning [5,12), afternoon [12,17), evening [17,22), night."""
    if 5 <= hour < 12:
        return "morning"
    if 12 <= hour < 17:
        return "afternoon"
    if 17 <= hour < 22:
        return "evening"
    return "night"


# Runs in the browser on page load, before the first render: the visitor's local hour, bucketed
# as above, replaces the first input; the other inputs pass through unchanged.
BROWSER_TIME_OF_DAY_JS = """
(...inputs) => {
  const h = new Date().getHours();
  const bucket = h >= 5 && h < 12 ? "morning" : h >= 12 && h < 17 ? "afternoon"
               : h >= 17 && h < 22 ? "evening" : "night";
  return inputs.length > 1 ? [bucket, ...inputs.slice(1)] : bucket;
}
"""

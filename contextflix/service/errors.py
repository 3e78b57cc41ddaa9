"""The one error type the service raises for requests it cannot answer as asked."""

from __future__ import annotations


class RecommenderError(ValueError):
    """Bad input (unknown ids, out-of-range values, unavailable models).

    The message is written for the person who sent the request (the API returns it as
    ``{"error": message}``), so it says what was wrong and what would be accepted.
    """

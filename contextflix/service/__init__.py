"""Serving: the engine behind the UI and the APIs (no Gradio, no Lightning).

``Recommender(bundle)`` answers recommend / recommend_batch / similar / history / preferences
/ users / movies / genres / health / ab_results with the JSON shapes docs/architecture.md
describes; ``service.requests`` holds the one request model and its limits.
"""

from contextflix.service.errors import RecommenderError
from contextflix.service.recommender import MODELS, Recommender

__all__ = ["MODELS", "Recommender", "RecommenderError"]

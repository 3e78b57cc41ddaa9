"""Serving: the engine behind the UI and the APIs (no Gradio, no Lightning).

``Recommender(bundle)`` answers recommend / similar / history / preferences / users / movies /
genres / health / ab_results with the JSON shapes of DESIGN.md's API section.
"""

from contextflix.service.errors import RecommenderError
from contextflix.service.recommender import MODELS, Recommender

__all__ = ["MODELS", "Recommender", "RecommenderError"]

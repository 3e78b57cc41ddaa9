"""ContextFlix Space entry point: resolve the bundle, build the service, serve UI + APIs.

    python app.py    # http://localhost:7860 (GRADIO_SERVER_PORT); REST docs at /api/docs

Bundle order: CONTEXTFLIX_BUNDLE (folder or Hub repo id[@revision]) -> configs/app.yaml's Hub
repo -> artifacts/<dataset>/ -> train the quick profile on the embedded data set (cached).
"""

from __future__ import annotations

import logging

import uvicorn

from contextflix.service import Recommender
from contextflix.web.server import Settings, create_app, resolve_bundle


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = Settings.load()
    bundle = resolve_bundle(settings)
    service = Recommender.from_bundle(bundle)
    app = create_app(service, settings, bundle_dir=bundle)
    logging.getLogger("contextflix.app").info(
        "serving on http://%s:%d (REST docs: /api/docs)", settings.host, settings.port
    )
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")


if __name__ == "__main__":
    main()

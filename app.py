"""ContextFlix Space entry point: resolve the bundle, build the service, serve UI + APIs.

    python app.py    # http://localhost:7860 (GRADIO_SERVER_PORT); REST docs at /api/docs

Bundle order: CONTEXTFLIX_BUNDLE (folder or Hub repo id[@revision]) -> configs/app.yaml's Hub
repo -> artifacts/<dataset>/. Without one (a fresh clone), the page answers at once with the
most popular movies while ``python -m training pipeline`` trains the bundle in a child process
(the profile configs/app.yaml names); the trained models are swapped in without a restart.
"""

from __future__ import annotations

import gc
import logging
import warnings


def main() -> None:
    # Imported here, not above: the batch helper processes (contextflix/service/workers.py)
    # are spawned, and a spawned process imports this file; they need none of the web stack.
    import uvicorn

    from contextflix.bundle import BundleError
    from contextflix.service import Recommender
    from contextflix.web.limits import ApiConfig
    from contextflix.web.server import Settings, create_app, first_start, resolve_bundle
    from contextflix.web.startup import popularity_bundle

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "gradio", "huggingface_hub", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    settings = Settings.load()
    bundle = resolve_bundle(settings)
    training = None
    if bundle is None:
        service = Recommender(popularity_bundle(settings.dataset))
        training = first_start(settings)
    else:
        try:
            service = Recommender.from_bundle(
                bundle, batch_processes=ApiConfig.load().batch_processes
            )
        except BundleError as error:  # e.g. a bundle without tables whose data set is missing
            logging.getLogger("contextflix.app").error("cannot serve %s: %s", bundle, error)
            raise SystemExit(1) from None
    app = create_app(service, settings, bundle_dir=bundle, training=training)
    if training is not None:
        training.start()
    logging.getLogger("contextflix.app").info(
        "serving on http://%s:%d (REST docs: /api/docs)", settings.host, settings.port
    )
    # What is loaded now (libraries, the bundle) lives as long as the process: frozen, the
    # garbage collector no longer walks it at every collection (a sixth of an answer's time).
    gc.freeze()
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")


if __name__ == "__main__":
    main()

"""``lmtransfer serve``: trained runs and encoders over HTTP (FastAPI on uvicorn), with dynamic batching.
The routes (``app``), the batcher (``batcher``), what each request body is (``schemas``), and what is
served and how it computes (``served``)."""

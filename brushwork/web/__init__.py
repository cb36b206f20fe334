"""`brushwork serve`: a local web app over the engine (job queue, live preview, JSON API).

Importing this package needs nothing beyond the core; the app itself (`brushwork.web.app`)
needs the `web` extra: fastapi, uvicorn and python-multipart.
"""

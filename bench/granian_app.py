"""Our API under granian instead of uvicorn, to see whether the ASGI server is worth changing.

``python -m bench.granian_app`` builds the app as ``kasal serve`` does (from the
``KASAL_*`` environment; an external database only) and serves it with granian on
``KASAL_HOST:KASAL_PORT``. Granian is not a dependency: install it into the venv to run this.
"""

from __future__ import annotations

import os

from litestar import Litestar

from bench.floor_app import serve_granian


def create() -> Litestar:
    """The app ``kasal serve`` would serve, wired from the environment."""
    from interface.app import create_app
    from interface.settings import Settings
    from interface.wiring import wire

    return create_app(wire(Settings.from_env()))


if __name__ == "__main__":
    serve_granian("bench.granian_app:create", os.environ.get("KASAL_HOST", "127.0.0.1"),
                  int(os.environ["KASAL_PORT"]))

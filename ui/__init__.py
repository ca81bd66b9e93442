"""The lastmile product UI: ``create_server(bot)`` is the FastAPI app (Gradio mounted at
``/``, the OpenAI-compatible API at ``/v1``); ``build_app(bot)`` is the Gradio part alone."""

from ui.app import build_app, launch_options
from ui.server import create_server, serve

__all__ = ["build_app", "create_server", "launch_options", "serve"]

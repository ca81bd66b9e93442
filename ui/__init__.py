"""The Gradio chat UI for lastmile: ``build_app(bot)`` returns a ready ``gr.Blocks``."""

from ui.app import build_app, launch_options

__all__ = ["build_app", "launch_options"]

"""Serve: an OpenAI-compatible server for the base model and every trained adapter, with a request log."""

from tunewise.serve.catalog import ServedModel
from tunewise.serve.server import RunningServer, serve, start_server

__all__ = ["RunningServer", "ServedModel", "serve", "start_server"]

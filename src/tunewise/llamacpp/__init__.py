"""llama.cpp, the CPU inference engine: its sources, converters, the ``llama-server`` build and child process."""

from tunewise.llamacpp.build import llama_server_binary
from tunewise.llamacpp.convert import convert_lora_to_gguf, convert_to_gguf
from tunewise.llamacpp.sdist import LLAMA_CPP_PYTHON_VERSION, LlamaCppError
from tunewise.llamacpp.server import LaunchPlan, ServerPlan, ServerProcess, free_port

__all__ = [
    "LLAMA_CPP_PYTHON_VERSION",
    "LaunchPlan",
    "LlamaCppError",
    "ServerPlan",
    "ServerProcess",
    "convert_lora_to_gguf",
    "convert_to_gguf",
    "free_port",
    "llama_server_binary",
]

"""``python -m tunewise.llamacpp``: build (or find) ``llama-server`` now and print its path."""

import sys

from tunewise.llamacpp.build import llama_server_binary
from tunewise.llamacpp.sdist import LlamaCppError

try:
    print(llama_server_binary(announce=lambda line: print(line, file=sys.stderr, flush=True)))
except LlamaCppError as error:
    sys.exit(f"error: {error}")

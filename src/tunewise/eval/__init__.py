"""The eval harness: candidates (model + prompt strategy) on a split, scored with CIs and paired tests."""

from tunewise.eval.prompts import PromptContext, get_prompt, register_prompt
from tunewise.eval.runner import evaluate

__all__ = ["PromptContext", "evaluate", "get_prompt", "register_prompt"]

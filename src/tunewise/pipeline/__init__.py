"""The main job: the whole pipeline that exists so far, on one project (by default the receipts example).

evaluate the baselines → decide → curate a dataset version → train (when the decision says so) → evaluate the
fine-tune against the best prompt with a paired test → promote it to the champion alias when it beats it → serve the
model and query it with the ``openai`` client → monitor the served traffic against the champion's data → one report
that opens with the answer and links every stage's own report.
"""

from tunewise.pipeline.budget import TrainBudget
from tunewise.pipeline.quickstart import run_quickstart
from tunewise.pipeline.record import PipelineResult
from tunewise.pipeline.run import run_pipeline, serve_and_query

__all__ = ["PipelineResult", "TrainBudget", "run_pipeline", "run_quickstart", "serve_and_query"]

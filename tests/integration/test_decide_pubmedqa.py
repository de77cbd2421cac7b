"""decide on the real embedded model and the real PubMedQA abstracts, with tiny probes (minutes on 2 cores)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_decide_measures_the_knowledge_node_on_pubmedqa(tmp_path: Path, shared_data: Path) -> None:
    from tunewise.config import DecideSpec, ProbeSpec, load_project
    from tunewise.decide import decide

    project_dir = tmp_path / "pubmedqa"
    project_dir.mkdir()
    text = (ROOT / "examples" / "pubmedqa" / "tunewise.yaml").read_text()
    (project_dir / "tunewise.yaml").write_text(text.replace("../../../shared/data", str(shared_data)))
    project = load_project(project_dir)
    spec = DecideSpec(probes=ProbeSpec(chunk=8, max_examples=8, retrieval_k=1, shot_selection="random"))
    d = decide(project, spec=spec, track=False, sufficiency=False)
    knowledge = d.answer("knowledge")
    assert knowledge.answer in ("yes", "no")  # measured, not unknown
    gain = next(e for e in knowledge.evidence if e.probe == "rag" and "with passages vs" in e.label)
    assert gain.run_id and gain.n == 8 and gain.ci_low is not None and gain.ci_low <= gain.value <= gain.ci_high
    likelihood = next(p for p in d.probes if p.name == "answer likelihood")
    assert likelihood.error is None and likelihood.n == 8 and likelihood.extra["placebo"] > 0
    assert any(e.metric == "answer_nll_gain" for e in knowledge.evidence)
    retrieval = next(p for p in d.probes if p.name.startswith("retrieval"))
    assert retrieval.error is None and retrieval.extra["recall_at_k"] >= 0.5  # question/abstract overlap is high
    assert (project.state_dir / "decisions" / d.decision_id / "report.html").is_file()

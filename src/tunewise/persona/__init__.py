"""Persona consistency: conversations replayed turn by turn, probed about the speaker, scored against the persona.

from tunewise.persona import persona_eval
result = persona_eval(project)          # PersonaResult: every candidate's drift curves, tests and report
"""

from tunewise.persona.record import CandidateCurves, Curve, PersonaResult
from tunewise.persona.run import persona_eval

__all__ = ["CandidateCurves", "Curve", "PersonaResult", "persona_eval"]

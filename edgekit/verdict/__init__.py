"""The verdict: per model x target, the configuration to ship, and why every other one lost.

Torch-free (numpy and the bench/gate statistics only); rules in :mod:`edgekit.verdict.rules`.
"""

from edgekit.verdict.rules import (
    METRICS,
    Candidate,
    ModelVerdict,
    Outcome,
    judge_model,
    judge_report,
    report_verdicts,
    verdict_json,
)

__all__ = ["METRICS", "Candidate", "ModelVerdict", "Outcome", "judge_model", "judge_report", "report_verdicts",
           "verdict_json"]

"""``edgekit prune``'s accuracy check: the recovered model against the unpruned one, paired.

Validation split (recovery chose its epoch there) decides with ``--max-drop``
(upper ``--confidence`` bound, :mod:`edgekit.bench.budget`); the test split
is reported. Without ``--max-drop`` a drop over :data:`DEFAULT_BUDGET_PTS`
fails only when the test split confirms it (the paired interval's lower end
above the budget).
"""

from __future__ import annotations

from typing import Any

from edgekit.core.lazy import require
from edgekit.optimize.train.loop import TrainProgress

#: the top-1 budget (points) a pruned, recovered model is judged on without --max-drop
DEFAULT_BUDGET_PTS = 1.0


def logits(model: Any, cache: Any) -> Any:
    """Logits of ``model`` (eval mode, no grad) on an ImageCache, as numpy."""
    import numpy as np

    from edgekit.optimize.train.batches import EvalBatches

    torch = require("torch")
    was = model.training
    model.eval()
    out = []
    try:
        with torch.no_grad():
            for x, _ in EvalBatches(cache, batch_size=256):
                out.append(model(torch.from_numpy(x)).numpy())
    finally:
        model.train(was)
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def check_accuracy(options: Any, model: Any, data: Any, refs: tuple[Any, Any], bar: TrainProgress) -> dict[str, Any]:
    """The paired accuracy check of the recovered model against the unpruned one (see the module notes)."""
    from edgekit.bench.budget import judge
    from edgekit.bench.paired import compare_paired

    cand_val, cand_test = logits(model, data.validation), logits(model, data.test)
    yv, yt = data.validation.labels, data.test.labels
    if options.max_drop is not None:
        v = judge((refs[0], cand_val, yv), (refs[1], cand_test, yt), budget_pts=options.max_drop,
                  confidence=options.confidence)
        out = {**v.to_json(), "budget_source": "--max-drop"}
        failed = not v.accepted or v.breaks_on_test
        reason = (f"the pruned model does not meet the {options.max_drop:g} pt budget: {v.statement}"
                  if not v.accepted else f"accepted on validation but it breaks the budget on test: {v.statement}")
    else:
        p = compare_paired(refs[1], cand_test, yt, budget_pts=DEFAULT_BUDGET_PTS)
        out = {"budget_pts": DEFAULT_BUDGET_PTS, "budget_source": "default (fails only when the test split confirms "
               "the drop)", "test": p.to_json(), "test_drop_pts": p.drop_pts, "statement": f"test: {p.reason}"}
        failed = p.verdict == "fail"
        reason = f"the pruned model fails the accuracy check on the test split: {p.reason} (set --max-drop)"
    out.update({"verdict": "failed" if failed else "passed", "reason": reason if failed else None,
                "unpruned_test_top1": float((refs[1].argmax(1) == yt).mean()),
                "pruned_test_top1": float((cand_test.argmax(1) == yt).mean()), "n_test": len(yt)})
    bar.message(f"accuracy ({out['verdict']}): {out['statement']}")
    return out

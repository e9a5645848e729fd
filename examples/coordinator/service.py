"""The coordinator: a predict service that ticks every model, asks for predictions and scores them.

This is the part you deploy; it knows nothing of the local crunch the example
runs it on. Each step:

1. takes the roster (``runner.joined_since_last()``): the ready models, and
   those that joined since the previous step (new models, and also redeploys,
   recoveries and reconnects: each is a fresh instance on its node);
2. sends the joiners the whole price history in one ``tick`` round restricted
   to them, so they catch up exactly once;
3. scores the previous step's predictions against the new price;
4. ticks the roster's models with the new price (the same data for all,
   encoded once), then asks them for a prediction, both rounds restricted to
   the roster, so a model that joins meanwhile waits for the next step.

Shutting down is ``runner.close()``, from wherever (a signal handler, another
thread): the round under way returns at once (its models answer
``MODEL_LEFT``, at no cost) and the next one raises ``MrclientError``, which
``run()`` takes as the end.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from mrclient import DynamicSubclassModelConcurrentRunner, ModelPredictResult, ModelRunner, MrclientError

SUCCESS = ModelPredictResult.Status.SUCCESS


@dataclass
class ModelScore:
    """What the service knows of one model (by ``model_id``, across its redeploys)."""

    name: str
    statuses: Counter[str] = field(default_factory=Counter)
    errors: list[float] = field(default_factory=list)
    catch_ups: int = 0
    out_of_sync: int = 0

    @property
    def mean_error(self) -> float | None:
        return sum(self.errors) / len(self.errors) if self.errors else None


class PredictService:
    """Drives a crunch's models step by step; ``run()`` until the prices end or the runner is closed."""

    def __init__(self, runner: DynamicSubclassModelConcurrentRunner, predict_timeout: float = 2.0) -> None:
        self.runner = runner
        self.predict_timeout = predict_timeout
        self.prices: list[float] = []  # the history a joiner is sent
        self.scores: dict[str, ModelScore] = {}
        self.steps = 0
        self._pending: dict[str, float] = {}  # model_id -> its prediction of the next price
        self._left: list[str] = []  # told by the listener thread, printed by the next step
        self._left_lock = threading.Lock()
        runner.on_model_left(self._model_left)

    def _model_left(self, model: ModelRunner) -> None:
        """On mrclient's listener thread: bookkeeping only, never a call to a model."""
        with self._left_lock:
            self._left.append(model.model_name or model.model_id)

    def run(self, prices: Iterable[float], stop: threading.Event, interval: float = 0.0) -> None:
        """One step per price, ``interval`` seconds apart, until the prices end, ``stop`` is set or ``close()``."""
        for price in prices:
            if stop.is_set() or self.runner.closed:
                return
            try:
                report = self.step(price)
            except MrclientError:
                if self.runner.closed:  # closed (by a signal, another thread) between two rounds
                    return
                raise
            print(report, flush=True)
            if stop.wait(interval):
                return

    def step(self, price: float) -> str:
        """One step: catch the joiners up, score, tick, predict; returns the step's report."""
        roster = self.runner.joined_since_last()
        lines = [f"step {self.steps}  price {price:.2f}  models {len(roster.models)}"]
        with self._left_lock:
            left, self._left = self._left, []
        lines += [f"  left: {name}" for name in left]
        if roster.joined:
            lines += self._catch_up(roster.joined)

        errors = {model_id: abs(predicted - price) for model_id, predicted in self._pending.items()}
        self._pending.clear()
        self.runner.call("tick", args=[[price]], model_runs=roster.models)
        self.prices.append(price)
        self.steps += 1
        results = self.runner.call("predict", timeout=self.predict_timeout, model_runs=roster.models)
        if self.runner.closed:  # the round was cut short: MODEL_LEFT is no answer to score
            return "\n".join([*lines, "  (closed during the step)"])
        for model, result in sorted(results.items(), key=lambda item: item[0].model_name or ""):
            lines.append(self._record(model, result, errors.get(model.model_id)))
        return "\n".join(lines)

    def _catch_up(self, joined: Iterable[ModelRunner]) -> list[str]:
        """Send the joiners the whole history, once; the step's rounds then include them."""
        joined = list(joined)
        if not self.prices:
            return [f"  joined: {self._score(m).name} (nothing to catch up yet)" for m in joined]
        results = self.runner.call("tick", args=[self.prices], model_runs=joined)
        lines = []
        for model, result in results.items():
            score = self._score(model)
            score.catch_ups += 1
            outcome = f"sent {len(self.prices)} prices" if result.status is SUCCESS else result.detail
            lines.append(f"  joined: {score.name} ({outcome})")
        return lines

    def _record(self, model: ModelRunner, result: ModelPredictResult, error: float | None) -> str:
        score = self._score(model)
        if result.status is not SUCCESS and model.closed:  # it left during the step: no answer, no cost
            return f"  {score.name:<16} left during the step"
        score.statuses[result.status.name] += 1
        if error is not None:
            score.errors.append(error)
        scored = f"  error {error:6.2f}" if error is not None else ""
        if result.status is not SUCCESS:
            return f"  {score.name:<16} {result.status.name:<8} {result.detail}{scored}"
        prediction = result.result
        self._pending[model.model_id] = float(prediction["price"])
        sync = ""
        if prediction["seen"] != len(self.prices):
            score.out_of_sync += 1
            sync = f"  OUT OF SYNC: saw {prediction['seen']} of {len(self.prices)} prices"
        return f"  {score.name:<16} {result.status.name:<8} predicts {prediction['price']:8.2f}{scored}{sync}"

    def _score(self, model: ModelRunner) -> ModelScore:
        return self.scores.setdefault(model.model_id, ModelScore(model.model_name or model.model_id))

    def summary(self) -> str:
        """One line per model that was ever ready: its answers, its catch-ups and its mean error."""
        lines = [f"after {self.steps} steps:", f"  {'model':<16} {'answers':>7} {'failed':>6} {'timeout':>7} "
                 f"{'catch-ups':>9} {'mean error':>10}"]
        for score in sorted(self.scores.values(), key=lambda s: s.name):
            mean = f"{score.mean_error:10.2f}" if score.mean_error is not None else f"{'-':>10}"
            lines.append(f"  {score.name:<16} {score.statuses['SUCCESS']:>7} {score.statuses['FAILED']:>6} "
                         f"{score.statuses['TIMEOUT']:>7} {score.catch_ups:>9} {mean}")
        if any(score.out_of_sync for score in self.scores.values()):
            lines.append("  some models were OUT OF SYNC")
        return "\n".join(lines)

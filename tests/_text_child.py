"""What tests/test_plain_text.py runs in a pseudo-terminal and through a pipe: every object's plain text, printed.

The objects are made without a network: runners that never connect, one
round's results recorded into their statistics, and a runner not started.
The values are long on purpose (a long model name, result and error), so that
an 80-column terminal has to cut them. It prints one object after another,
then ``done``.
"""

from __future__ import annotations

import time

from mrclient import ConnectionState, DynamicSubclassModelConcurrentRunner, ModelPredictResult, RoundResults
from mrclient.concurrent.results import REST_DETAIL
from mrclient.runners import MODEL_LEFT, DynamicSubclassModelRunner
from mrclient.stats import ModelStatsTable, StatsBook

LONG_NAME = "a-tracker-with-a-name-much-longer-than-any-column-should-be"
LONG_ERROR = "MODEL_FAILED: The model raised an exception: " + "the tracker diverged after a long warm-up " * 3


def main() -> None:
    runners = [
        DynamicSubclassModelRunner(
            base_classname="birdgame.TrackerBase", deployment_id=f"deployment-{n}", model_id=f"model-{n}",
            model_name=name, ip="127.0.0.1", port=40000 + n, infos={"cruncher_name": "a-cruncher-with-a-long-name"},
        )
        for n, name in enumerate((LONG_NAME, "slow", "broken"), start=1)
    ]  # fmt: skip
    ok, late, failing = runners
    Status = ModelPredictResult.Status
    results = RoundResults(
        {
            ok: ModelPredictResult(ok, {"location": 19.5, "history": list(range(40))}, Status.SUCCESS, 1_300),
            late: ModelPredictResult(late, None, Status.TIMEOUT, 503_000, "DEADLINE_EXCEEDED: Deadline Exceeded"),
            failing: ModelPredictResult(failing, None, Status.FAILED, 2_100, LONG_ERROR),
        },
        method="predict",
        started_at=time.time(),
    )
    book = StatsBook(success=Status.SUCCESS, timeout=Status.TIMEOUT, rest_detail=REST_DETAIL, left_detail=MODEL_LEFT)
    results._finish(0.503, book.record("predict", results, results.started_at, 0.503))
    failing.mark_left("reported MULTIPLE_FAILED")
    stats = ModelStatsTable((runner, runner.stats) for runner in runners)
    connection = ConnectionState(
        connected=True, since=time.time(), reconnects=1, reports_pending=0, reports_unconfirmed=1,
        reports_sent={"MULTIPLE_FAILED": 1}, last_error="the orchestrator closed the connection: going away",
    )  # fmt: skip
    runner = DynamicSubclassModelConcurrentRunner(
        timeout=1, crunch_id="a-crunch-with-quite-a-long-name", host="orchestrator.example.internal", port=8000,
        base_classname="birdgame.TrackerBase",
    )  # fmt: skip
    try:
        for shown in (results, stats, book.totals(), failing.stats, results.summary, connection, runner):
            print(shown)
        print(repr(results.summary))
    finally:
        runner.close()
    print("done")


if __name__ == "__main__":
    main()

"""The profiler's summary: which samples count as gRPC's observability check (benchmarks/profile.py)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.profile import in_observability_check, summarize

WORKER = "Thread.run (threading.py:982);_worker (concurrent/futures/thread.py:83)"
CALL = f"{WORKER};_UnaryUnaryMultiCallable.__call__ (grpc/_channel.py:1165)"
#: At the start of a call: Cython's segregated_call (no frame of its own) enters get_plugin.
AT_START = f"{CALL};_UnaryUnaryMultiCallable._blocking (grpc/_channel.py:1136);contextmanager.<locals>.helper (contextlib.py:301)"
#: At its end: _handle_event records the latency.
AT_END = (
    f"{CALL};_UnaryUnaryMultiCallable._blocking (grpc/_channel.py:1153);_handle_event (grpc/_channel.py:229);"
    "maybe_record_rpc_latency (grpc/_observability.py:286)"
)
WAITING = f"{CALL};_UnaryUnaryMultiCallable._blocking (grpc/_channel.py:1152)"
OWN_CONTEXT = f"{WORKER};switch_interval (mrclient/concurrent/rounds.py:50);contextmanager.<locals>.helper (contextlib.py:301)"


def test_both_call_sites_count_and_nothing_else() -> None:
    assert in_observability_check(AT_START.split(";"))
    assert in_observability_check(AT_END.split(";"))
    assert not in_observability_check(WAITING.split(";"))
    assert not in_observability_check(OWN_CONTEXT.split(";"))


def test_summary_gives_the_share(tmp_path: Path) -> None:
    collapsed = tmp_path / "stacks.txt"
    collapsed.write_text(f"{AT_START} 3\n{AT_END} 2\n{WAITING} 10\n{OWN_CONTEXT} 5\n")
    first_line = summarize(collapsed, top=3).splitlines()[0]
    assert first_line == "20 samples in rounds; 25.0% in gRPC's observability check (get_plugin)"

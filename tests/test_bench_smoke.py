"""Every registered bench case runs end to end in quick mode (correctness of the harness and
cases, not timing: no timed assertions here)."""

import pytest

from fastem.bench import discover_cases
from fastem.benchmark import BenchContext, format_table, time_call

CASES = discover_cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_runs_quick(name):
    ctx = BenchContext(quick=True, echo=lambda s: None)
    CASES[name].run(ctx)
    assert ctx.measurements, f"bench case {name} measured nothing"
    assert any(m.role == "fastem" for m in ctx.measurements), f"bench case {name} has no fastem row"
    assert all(m.median_s > 0 and m.min_s <= m.median_s <= m.max_s for m in ctx.measurements)
    table = format_table(ctx.measurements).splitlines()
    groups = {(m.case, m.size) for m in ctx.measurements}
    assert len(table) == 2 + len(groups), "one table row per (case, size) after the header"
    for m in ctx.measurements:   # every measured implementation is on the row of its case and size
        assert any(ln.startswith(f"{m.case:<28} {m.size:<14}") and m.impl in ln for ln in table[2:]), (m, table)


def test_time_call_counts_and_warms_up():
    calls = []
    times = time_call(lambda: calls.append(1), warmup=3, repeat=5, min_time=0.0)
    assert len(times) == 5 and len(calls) == 8


def test_result_files_are_replaced_atomically(tmp_path):
    from fastem.bench import write_result_text

    path = tmp_path / "r.md"
    write_result_text(path, "old\n")
    write_result_text(path, "new\n")
    assert path.read_text() == "new\n" and [p.name for p in tmp_path.iterdir()] == ["r.md"]

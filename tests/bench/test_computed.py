"""bench.computed: the summary maths of the every-answer-computed section, and its rows."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bench import run
from bench.computed import computed_rps, summarise
from bench.floor import FloorRequest, floor_requests, measure


def _load(*, completed: int, ok: int, degraded: int, rps: float, p99: float = 10.0,
          errors: int = 0, cpu: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    return {"completed": completed, "ok": ok, "achieved_rps": rps,
            "degraded": {"total": degraded}, "errors": {"total": errors},
            "latency": {"p99_ms": p99}, "cpu": cpu or {}}  # fmt: skip


CPU = {"gateway": {"cpu_ms_per_request": 2.0}, "retrieval": {"cpu_ms_per_request": 4.0},
       "ranking": {"cpu_ms_per_request": 1.0}}  # fmt: skip


def test_ratio_allowed_rate_and_throughput_share() -> None:
    phases = {
        "cpu": _load(completed=2000, ok=2000, degraded=0, rps=100.0, cpu=CPU),
        # 300 answered per s, a third of them shed (degraded): 200 computed per s.
        "saturation": _load(completed=3000, ok=3000, degraded=1000, rps=300.0),
        "goal": _load(completed=4000, ok=3998, degraded=0, rps=200.0, p99=21.0, errors=2),
    }
    got = summarise({"cpu_ms_per_answer": 5.0}, phases, cores=2)
    assert got["cpu_ms_per_answer_total"] == pytest.approx(7.0)
    assert got["split_overhead_ms"] == pytest.approx(2.0)
    assert got["ratio_to_floor"] == pytest.approx(1.4) and got["ratio_goal_met"]
    assert got["allowed_rps"] == pytest.approx(2000.0 / 7.0, abs=0.05)  # 2 cores' ms / 7 ms
    assert got["computed_rps"] == pytest.approx(200.0)
    assert got["throughput_share"] == pytest.approx(200.0 / (2000.0 / 7.0), abs=1e-3)
    assert not got["throughput_goal_met"]  # 0.70 of what the CPU allows: under 0.8
    phases["saturation"] = _load(completed=3000, ok=3000, degraded=200, rps=300.0)
    got = summarise({"cpu_ms_per_answer": 5.0}, phases, cores=2)
    assert got["computed_rps"] == pytest.approx(280.0) and got["throughput_goal_met"]
    # errors fail the p99 goal even when the p99 is under 25 ms
    assert got["goal_p99_ms"] == 21.0 and got["goal_errors"] == 2 and not got["p99_goal_met"]


def test_cpu_is_charged_to_computed_answers_only() -> None:
    # A quarter of the answers were shed (degraded): the CPU is the computed answers'.
    phases = {"cpu": _load(completed=400, ok=400, degraded=100, rps=20.0, cpu=CPU)}
    got = summarise({"cpu_ms_per_answer": 5.0}, phases, cores=2)
    for name, ms in (("gateway", 2.0), ("retrieval", 4.0), ("ranking", 1.0)):
        assert got["cpu_ms_per_answer"][name] == pytest.approx(ms * 4 / 3, abs=1e-3)
    assert got["cpu_ms_per_answer_total"] == pytest.approx(28 / 3, abs=1e-3)
    assert got["cpu_phase_computed_share"] == 0.75
    nothing = {"cpu": _load(completed=10, ok=10, degraded=10, rps=1.0, cpu=CPU)}
    assert summarise({"cpu_ms_per_answer": 5.0}, nothing, cores=2)["ratio_to_floor"] is None


def test_idle_cpu_is_taken_off_the_answers() -> None:
    # 100 answers/s; the retrieval process burns 0.1 core with no traffic: 1 ms per answer.
    phases = {"cpu": _load(completed=2000, ok=2000, degraded=0, rps=100.0, cpu=CPU),
              "idle": {"cores": {"retrieval": 0.1, "gateway": 0.0}}}  # fmt: skip
    got = summarise({"cpu_ms_per_answer": 5.0}, phases, cores=2)
    assert got["cpu_ms_per_answer"]["retrieval"] == pytest.approx(3.0)
    assert got["cpu_ms_per_answer"]["gateway"] == pytest.approx(2.0)
    assert got["cpu_ms_per_answer_total"] == pytest.approx(6.0)
    assert got["idle_cores"] == {"retrieval": 0.1, "gateway": 0.0}


def test_goals_missed_and_a_missing_service() -> None:
    phases = {"cpu": _load(completed=100, ok=100, degraded=0, rps=100.0, cpu=CPU)}
    got = summarise({"cpu_ms_per_answer": 4.0}, phases, cores=2)
    assert got["ratio_to_floor"] == pytest.approx(1.75) and not got["ratio_goal_met"]
    assert "computed_rps" not in got and "goal_p99_ms" not in got
    partial = {"cpu": _load(completed=100, ok=100, degraded=0, rps=100.0,
                            cpu={"gateway": CPU["gateway"]})}  # fmt: skip
    got = summarise({"cpu_ms_per_answer": 4.0}, partial, cores=2)
    assert got["cpu_ms_per_answer_total"] is None and got["ratio_to_floor"] is None
    assert not got["ratio_goal_met"] and got["allowed_rps"] is None


def test_computed_rps_counts_undegraded_successes_only() -> None:
    # 100 completed per s; 10 % errors (not ok), 20 % degraded: 70 computed per s.
    assert computed_rps(_load(completed=1000, ok=900, degraded=200, rps=100.0)) == 70.0
    assert computed_rps(_load(completed=0, ok=0, degraded=0, rps=0.0)) == 0.0


def test_floor_requests_are_the_load_generators_recommendations() -> None:
    users, items = ["11", "u/12", "13"], ["101", "102", "103", "104", "105", "106"]
    reqs = floor_requests(users, items, 200, {"user_recs": 0.8, "anon_recs": 0.2}, seed=3)
    assert len(reqs) == 200
    known = [r for r in reqs if r.user_id is not None]
    anon = [r for r in reqs if r.user_id is None]
    assert {r.user_id for r in known} == set(users) and all(not r.recent for r in known)
    assert all(3 <= len(r.recent) <= 5 and set(r.recent) <= set(items) for r in anon)
    assert 0.1 < len(anon) / len(reqs) < 0.3
    # the same seed, the same requests; other kinds in the mix are skipped
    assert floor_requests(users, items, 200, {"user_recs": 0.8, "anon_recs": 0.2}, 3) == reqs
    mixed = floor_requests(users, items, 50, {"user_recs": 0.5, "item": 0.5}, seed=3)
    assert all(isinstance(r, FloorRequest) and r.user_id in users for r in mixed)


def test_summary_rows_state_the_figures_and_goals() -> None:
    phases = {
        "cpu": _load(completed=2000, ok=2000, degraded=0, rps=100.0, cpu=CPU),
        "saturation": _load(completed=3000, ok=3000, degraded=1000, rps=300.0),
        "goal": _load(completed=4000, ok=4000, degraded=0, rps=200.0, p99=21.0),
    }
    summary = summarise({"cpu_ms_per_answer": 5.0}, phases, cores=2) | {"goal_rate": 200.0}
    rows = [r for r in run.summarise({"computed": summary}) if r[0] == "computed"]
    assert len(rows) == 3
    assert "5 vs 2 + 4 + 1 = 7 (x1.4; goal met: True)" in rows[0][2]
    assert "goal met: True" in rows[2][2] and "21" in rows[2][2]


def test_a_combined_stack_sums_its_workers() -> None:
    # One process per core, all three services inside: its workers' CPU is the answer's.
    workers = {"combined": {"cpu_ms_per_request": 3.0}, "combined-2": {"cpu_ms_per_request": 4.5}}
    phases = {"cpu": _load(completed=2000, ok=2000, degraded=0, rps=100.0, cpu=workers),
              "idle": {"cores": {"combined": 0.0, "combined-2": 0.05}}}  # fmt: skip
    got = summarise({"cpu_ms_per_answer": 5.0}, phases, cores=2)
    assert got["cpu_ms_per_answer"] == {"combined": 3.0, "combined-2": 4.0}
    assert got["cpu_ms_per_answer_total"] == pytest.approx(7.0)
    assert got["ratio_to_floor"] == pytest.approx(1.4)
    missing = {"cpu": _load(completed=100, ok=100, degraded=0, rps=100.0, cpu={})}
    assert summarise({"cpu_ms_per_answer": 5.0}, missing, cores=2)["ratio_to_floor"] is None
    rows = [r for r in run.summarise({"computed_combined": got}) if r[0] == "computed_combined"]
    assert len(rows) == 3 and "one process" in rows[0][1]
    assert "5 vs 3 + 4 = 7 (x1.4; goal met: True)" in rows[0][2]


def test_the_paced_floor_is_the_one_at_each_process_rate() -> None:
    # Split: every service process sees all 100 req/s; combined: 2 workers share them.
    floor = {"cpu_ms_per_answer": 4.0,
             "paced": {"50": {"rate": 50.0, "cpu_ms_per_answer": 5.0},
                       "100": {"rate": 100.0, "cpu_ms_per_answer": 4.5}}}  # fmt: skip
    phases = {"cpu": _load(completed=2000, ok=2000, degraded=0, rps=100.0, cpu=CPU)}
    split = summarise(floor, phases, cores=2, process_rate=100.0)
    assert split["ratio_to_floor"] == pytest.approx(1.75)  # 7 ms against 4
    assert split["floor_paced_cpu_ms"] == 4.5 and split["floor_paced_rate"] == 100.0
    assert split["ratio_to_paced_floor"] == pytest.approx(7.0 / 4.5, abs=1e-3)
    combined = summarise(floor, phases, cores=2, process_rate=50.0)
    assert combined["ratio_to_paced_floor"] == pytest.approx(1.4)
    assert "ratio_to_paced_floor" not in summarise(floor, phases, cores=2, process_rate=200.0)
    rows = [r for r in run.summarise({"computed": split}) if r[0] == "computed"]
    assert any("paced" in r[1] and "4.5 vs 7 (x1.56)" in r[2] for r in rows)


class _CountingFloor:
    """Stands in for :class:`bench.floor.Floor`: counts the answers asked of it."""

    def __init__(self) -> None:
        self.asked: list[FloorRequest] = []

    async def answer(self, req: FloorRequest, parts: dict[str, float] | None = None) -> None:
        self.asked.append(req)
        if parts is not None:
            parts["sources"] = 0.1


def test_the_floor_measures_back_to_back_then_paced() -> None:
    reqs = [FloorRequest(str(u % 3)) for u in range(30)]
    fake = _CountingFloor()
    got = asyncio.run(measure(fake, reqs, warmup=5, paced_rates=(2000.0, 1000.0)))  # type: ignore[arg-type]
    # 5 warm-up + 3 users' vectors cached + 25 measured back to back + 25 per paced rate
    assert len(fake.asked) == 5 + 3 + 25 + 2 * 25
    assert got["requests"] == 25 and set(got["paced"]) == {"2000", "1000"}
    assert got["paced"]["1000"]["rate"] == 1000.0
    assert got["paced"]["1000"]["cpu_ms_per_answer"] >= 0.0
    assert "paced" not in asyncio.run(measure(_CountingFloor(), reqs, warmup=5))  # type: ignore[arg-type]

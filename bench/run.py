"""``make bench``: every scale benchmark in one run, JSON + PNG in bench/results/.

    python -m bench.run [--items 1000000] [--retrain] [--smoke] [--out bench/results]

Sections (each logs progress and writes ``<section>.json``; plots ``*.png``):

1. training - time per stage of ``hybridrec train --quick`` on the bundled data
   (the base bundle of everything else, shared with :mod:`bench.e2e`; trained
   once and cached under ``bench/.cache/e2e-small`` unless ``--retrain``) and BERT
   throughput;
2. ranker - scorer cost per request against plain numpy, tf.function, predict;
3. synthetic_bundle - a real-format bundle of ``--items`` items (built in a child
   process so its peak memory is its own; cached for reruns);
4. ann - Annoy vs hnswlib vs exact numpy on the bundle's item-tower vectors;
5. service - the real retrieval service on that bundle;
6. e2e - the whole stack at fixed request rates (:func:`bench.e2e.run_e2e`) on the
   base bundle, then (``e2e_synthetic``) on the synthetic bundle, against the goal of
   p99 <= 25 ms at 200 req/s; neither in ``--smoke``;
7. filters - attribute filters on the retrieval search (:mod:`bench.filter_bench`): mask +
   exact scan or widened ANN for a 50% and a 1% passing filter, against the unfiltered
   search with the same queries, at ml-latest-small's size and at ``--items``;
8. redis_parser - redis-py's pure-Python reply parser against hiredis on retrieval's
   user-state pipeline (:mod:`bench.redis_parser`).
9. computed - every answer computed (:func:`bench.computed.run_computed`): the floor (the
   model work in one process) against the CPU per computed answer of gateway, retrieval
   and ranking, computed throughput at saturation, and the full mix's p99 at 200 req/s.

Then a summary table on stdout, ``summary.json`` and ``summary.md``.
``--smoke`` runs everything tiny (for the test suite).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import PROJECT_ROOT, RESULTS_DIR, log, write_json
from bench.synthetic_bundle import BASE_NAME, CACHE_DIR, ensure_base_bundle

SMOKE: dict[str, Any] = {
    "items": 3000, "bert": 16, "queries": 60, "ranker_sizes": (20, 60), "ranker_calls": 10,
    "users": 10, "paced": 20, "rate": 50.0, "content_q": 20, "filter_queries": 30,
}
FULL: dict[str, Any] = {
    "items": 1_000_000, "bert": 1000, "queries": 1200, "ranker_sizes": (50, 200, 500, 1000),
    "ranker_calls": 100, "users": 300, "paced": 600, "rate": 20.0, "content_q": 200,
    "filter_queries": 100,
}
DEMO_ITEMS = 9742
"""ml-latest-small's catalogue: the filters section also runs at this size (exact search)."""


def _base_bundle(args: argparse.Namespace) -> tuple[Path, float | None]:
    """The base bundle, and the wall seconds of its training when trained in this run."""
    from shared.contracts.bundle import resolve_bundle

    if args.base_bundle:
        return resolve_bundle(args.base_bundle), None
    if not args.retrain and (CACHE_DIR / BASE_NAME / "latest").exists():
        return ensure_base_bundle(), None
    log("training: hybridrec train --quick on data/ml-latest-small.zip")
    t0 = time.perf_counter()
    bundle = ensure_base_bundle(retrain=True)
    return bundle, time.perf_counter() - t0


def _build_synthetic(base: Path, n_items: int, out_root: Path) -> dict[str, Any]:
    """Run the builder in a child process; returns its JSON report."""
    cmd = [sys.executable, "-m", "bench.synthetic_bundle", "--out", str(out_root),
           "--items", str(n_items), "--base", str(base), "--hnsw"]
    done = subprocess.run(cmd, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, check=True, text=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        v = f"{v:,.3g}" if abs(v) < 10 else f"{v:,.0f}"
    elif isinstance(v, int):
        v = f"{v:,}"
    return f"{v}{unit}"


#: Request rates of the gateway end-to-end run (bench.e2e) inside ``make bench``.
E2E_RATES = (50.0, 100.0, 200.0)


def summarise(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(area, measure, value) rows of the headline figures."""
    rows: list[tuple[str, str, str]] = []
    tr, bert = res.get("training"), res.get("bert")
    if tr:
        rows.append(("training", f"hybridrec train ({tr['dataset']}, quick) total",
                     _fmt(tr["total_s"], " s")))
        rows += [("training", f"  {k}", _fmt(v, " s")) for k, v in tr["stages_s"].items()]
    if bert:
        rows.append(("training", "BERT embedding throughput", _fmt(bert["items_per_s"],
                                                                   " items/s")))
    rk = res.get("ranker")
    if rk:
        for r in rk["sizes"]:
            m = r["candidates"]
            rows.append(("ranker", f"{m} candidates: service / plain numpy / tf.function / "
                         "predict (p50 ms)",
                         " / ".join(_fmt(r[k]["p50_ms"]) for k in
                                    ("service_rank", "plain_numpy", "tf_function",
                                     "model_predict"))))
        big = rk["sizes"][-1]
        rows.append(("ranker", f"forward throughput at {big['candidates']} (numpy scorer)",
                     _fmt(big["scorer_numpy"]["candidates_per_s"], " cand/s")))
        rows.append(("ranker", "service per-request overhead (fit)",
                     _fmt(rk["service_fit"]["overhead_ms"], " ms")))
    sb = res.get("synthetic_bundle")
    if sb:
        t = sb["timings_s"]
        rows.append(("bundle", f"synthetic bundle {sb['n_items']:,} items: build total",
                     _fmt(sb["build_s"], " s")))
        rows.append(("bundle", "Annoy build item-tower (64-d) / content (384-d)",
                     f"{_fmt(t.get('annoy item-tower index'), ' s')} / "
                     f"{_fmt(t.get('annoy content index'), ' s')}"))
        if "hnsw item_tower graph" in t:
            rows.append(("bundle", "HNSW build item-tower (64-d) / content (384-d)",
                         f"{_fmt(t.get('hnsw item_tower graph'), ' s')} / "
                         f"{_fmt(t.get('hnsw content graph'), ' s')}"))
        rows.append(("bundle", "bundle size / builder peak RSS",
                     f"{sb['bundle_gb']:.2f} GB / {sb['peak_rss_mb'] / 1024:.1f} GB"))
    ann = res.get("ann")
    if ann:
        ex = ann["exact_numpy"]
        rows.append(("ann", f"exact numpy top-{ann['k']} p50/p99 per query (batched)",
                     f"{_fmt(ex['per_query']['p50_ms'])} / {_fmt(ex['per_query']['p99_ms'])} ms "
                     f"({_fmt(ex['batched_per_query_ms'])} ms)"))
        p = ann.get("pick")
        if p:
            rows.append(("ann", f"Annoy pick: {p['n_trees']} trees, search_k {p['search_k']:,}",
                         f"recall {p['recall']:.3f}, p50 {p['p50_ms']:.2f} ms, "
                         f"p99 {p['p99_ms']:.2f} ms"))
        hn = [(s["p50_ms"], s, r) for r in ann["hnswlib"] for s in r["search"]
              if s["recall"] >= ann["config"]["target_recall"]]
        if hn:
            _, s, r = min(hn, key=lambda t: t[0])
            rows.append(("ann", f"hnswlib M={r['M']} ef={s['ef']} (build {r['build_s']:.0f} s)",
                         f"recall {s['recall']:.3f}, p50 {s['p50_ms']:.2f} ms, "
                         f"p99 {s['p99_ms']:.2f} ms"))
        rows.append(("ann", "code defaults match the pick", str(ann["defaults_match_pick"])))
        hp = ann.get("hnsw_pick")
        if hp:
            rows.append(("ann", f"HNSW pick: M={hp['M']}, ef {hp['ef']} (defaults match: "
                         f"{ann['hnsw_defaults_match_pick']})",
                         f"recall {hp['recall']:.3f}, p50 {hp['p50_ms']:.2f} ms, "
                         f"p99 {hp['p99_ms']:.2f} ms"))
    ac = res.get("ann_content")
    if ac:
        s = next(r for r in ac["search"] if r["search_k"] == ac["bundle_search_k"])
        rows.append(("ann", f"content index {ac['n_items']:,} x {ac['dim']} ({ac['n_trees']} trees,"
                     f" search_k {s['search_k']:,}) vs exact",
                     f"recall {s['recall']:.3f}, p50 {s['p50_ms']:.1f} ms vs "
                     f"{ac['exact_numpy']['per_query']['p50_ms']:.0f} ms"))
        if ac.get("hnsw"):
            g = next((r for r in ac["hnsw"]["search"] if r["ef"] == ac["hnsw"]["bundle_ef"]),
                     None)
            if g:
                rows.append(("ann", f"content HNSW graph (ef {g['ef']}) vs exact",
                             f"recall {g['recall']:.3f}, p50 {g['p50_ms']:.2f} ms"))
    hp = (res.get("ann_content") or {}).get("huge_pages")
    if hp:
        for name, st in hp["graphs"].items():
            rows.append(("ann", f"{name} HNSW graph p50 / p99, with / without huge pages",
                         f"{st['with']['p50_ms']:.2f} / {st['with']['p99_ms']:.2f} vs "
                         f"{st['without']['p50_ms']:.2f} / {st['without']['p99_ms']:.2f} ms "
                         f"(x{st['ratio_p50']:.2f} median)"))
    sv = res.get("service")
    if sv:
        rows.append(("service", "retrieval start-up to ready / RSS after traffic",
                     f"{sv['startup_s']:.1f} s / {sv['rss_after_traffic_mb']:,.0f} MB"))
        base = sv.get("annoy_baseline")
        no_huge = sv.get("no_huge_pages_baseline")
        for key in ("cold_known_users", "warm_known_users", "paced_mix"):
            st = sv[key]
            value = f"{st['p50_ms']:.1f} / {st['p99_ms']:.1f} ms"
            if no_huge:
                b = no_huge[key]
                value += f" (no huge pages: {b['p50_ms']:.1f} / {b['p99_ms']:.1f} ms)"
            if base:
                b = base[key]
                value += f" (Annoy: {b['p50_ms']:.1f} / {b['p99_ms']:.1f} ms)"
            rows.append(("service", f"/v1/candidates {key} p50 / p99, {sv.get('search')}",
                         value))
    for key in ("e2e", "e2e_synthetic"):
        e2e = res.get(key)
        if not e2e:
            continue
        for r in e2e["runs"]:
            rows.append(("e2e", f"{e2e['label']}, recommendations at {r['rate']:g} req/s: "
                         "p50 / p99 (misses' p99, hit rate; HTTP floor p99), errors",
                         f"{_fmt(r['p50_ms'])} / {_fmt(r['p99_ms'])} ms "
                         f"({_fmt(r['miss_p99_ms'])} ms, {_pct(r['hit_rate'])}; "
                         f"{_fmt(r['floor_p99_ms'])} ms), {r['errors']}"))
        goal = e2e["goal"]
        rows.append(("e2e", f"{e2e['label']}: goal p99 <= {goal['p99_ms']:g} ms at "
                     f"{goal['rate']:g} req/s, no errors", str(e2e["goal_met"])))
    for fr in res.get("filters", []):
        rows.append(("filters", f"{fr['n_items']:,} items ({fr['index']}): median ms without a "
                     "filter / 50% passing / 1% passing (x the unfiltered search)",
                     f"{_fmt(fr['none']['median_ms'])} / "
                     f"{_fmt(fr['50pct']['total']['median_ms'])} "
                     f"(x{_fmt(fr['50pct']['ratio_to_none'])}) / "
                     f"{_fmt(fr['1pct']['total']['median_ms'])} "
                     f"(x{_fmt(fr['1pct']['ratio_to_none'])})"))
    for section in ("computed", "computed_combined"):
        rows += _computed_rows(section, res.get(section))
    for row in res.get("redis_parser") or []:
        rows.append(("redis_parser", f"user-state pipeline, {row['history']} history items: "
                     "CPU ms, pure-Python parser vs hiredis",
                     f"{_fmt(row['python_ms'])} vs {_fmt(row['hiredis_ms'])} "
                     f"(x{_fmt(row['ratio'])})"))
    return rows


def _computed_rows(section: str, cp: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """The ``computed`` rows of one deployment: the split, or all three in one process."""
    rows: list[tuple[str, str, str]] = []
    if cp:
        per = cp["cpu_ms_per_answer"]
        what = " + ".join(per) if section == "computed" else "one process (all workers)"
        rows.append((section, f"CPU ms per computed answer: floor (model work, one process) "
                     f"vs {what}",
                     f"{_fmt(cp['floor_cpu_ms'])} vs "
                     f"{' + '.join(_fmt(v) for v in per.values())} = "
                     f"{_fmt(cp['cpu_ms_per_answer_total'])} (x{_fmt(cp['ratio_to_floor'])}; "
                     f"goal met: {cp['ratio_goal_met']})"))
        if cp.get("ratio_to_paced_floor") is not None:
            rows.append((section, "the same against the floor paced at each process's "
                         f"request rate ({_fmt(cp['floor_paced_rate'])}/s)",
                         f"{_fmt(cp['floor_paced_cpu_ms'])} vs "
                         f"{_fmt(cp['cpu_ms_per_answer_total'])} "
                         f"(x{_fmt(cp['ratio_to_paced_floor'])})"))
        rows.append((section, "computed answers/s at saturation vs what the CPU allows",
                     f"{_fmt(cp.get('computed_rps'))} vs {_fmt(cp.get('allowed_rps'))} "
                     f"(share {_fmt(cp.get('throughput_share'))}; goal met: "
                     f"{cp.get('throughput_goal_met')})"))
        rows.append((section, f"full mix, every answer computed, {_fmt(cp.get('goal_rate'))} "
                     "req/s: p99, errors",
                     f"{_fmt(cp.get('goal_p99_ms'))} ms, {cp.get('goal_errors')} "
                     f"(goal met: {cp.get('p99_goal_met')})"))
    return rows


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.0f} % hits"


def e2e_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of one :func:`bench.e2e.run_e2e` report, per rate."""
    runs = []
    for r in report["runs"]:
        load = r["load"]
        cache = load.get("result_cache") or {}
        miss = (cache.get("latency_by_outcome") or {}).get("miss") or {}
        runs.append({
            "rate": r["rate"], "achieved_rps": load["achieved_rps"],
            "errors": load["errors"]["total"],
            **{q: load["latency"].get(q) for q in ("p50_ms", "p95_ms", "p99_ms")},
            "miss_p99_ms": miss.get("p99_ms"), "hit_rate": cache.get("hit_rate"),
            "floor_p99_ms": r.get("baseline", {}).get("latency", {}).get("p99_ms"),
        })  # fmt: skip
    return {"label": report["label"], "goal": report["goal"], "goal_met": report["goal_met"],
            "cpu_speed": (report.get("machine") or {}).get("cpu_speed"), "runs": runs}


def print_table(rows: list[tuple[str, str, str]]) -> str:
    """Print and return the summary as a Markdown table."""
    lines = ["| area | measure | value |", "|---|---|---|"]
    lines += [f"| {a} | {m} | {v} |" for a, m, v in rows]
    text = "\n".join(lines)
    print(text)
    return text


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; returns the exit code."""
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=None, help="synthetic catalogue size")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (seconds, for tests)")
    ap.add_argument("--retrain", action="store_true", help="train the base bundle again")
    ap.add_argument("--base-bundle", default=None, help="use this trained bundle as the base")
    ap.add_argument("--out", default=str(RESULTS_DIR), help="results folder")
    ap.add_argument("--cache", default=str(CACHE_DIR), help="where synthetic bundles are kept")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip")
    ap.add_argument("--ann-trees", default=None, help="Annoy n_trees to sweep, e.g. 25,50,100")
    ap.add_argument("--ann-search-k", default=None, help="Annoy search_k to sweep")
    ap.add_argument("--ann-rounds", type=int, default=None, help="timing passes over the queries")
    args = ap.parse_args(argv)
    size = SMOKE if args.smoke else FULL
    n_items = int(args.items or size["items"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    t_all = time.perf_counter()
    res: dict[str, Any] = {}
    section_s: dict[str, float] = {}

    def done(name: str, t0: float) -> None:
        section_s[name] = round(time.perf_counter() - t0, 1)
        log(f"section {name}: {section_s[name]:.0f} s (total {time.perf_counter() - t_all:.0f} s)")

    from bench import plots

    t0 = time.perf_counter()
    base, train_wall = _base_bundle(args)
    from bench.train_bench import bert_throughput, train_stages

    res["training"] = train_stages(base, wall_s=train_wall)
    if "bert" not in skip:
        res["bert"] = bert_throughput(base, n=int(size["bert"]))
    write_json("training", {"training": res["training"], "bert": res.get("bert")}, out)
    plots.plot_training(res["training"], out / "training_stages.png")
    done("training", t0)

    if "ranker" not in skip:
        t0 = time.perf_counter()
        from bench.ranker_bench import plot_ranker, run_ranker_bench

        res["ranker"] = run_ranker_bench(base, sizes=tuple(size["ranker_sizes"]),
                                         calls=int(size["ranker_calls"]))
        write_json("ranker", res["ranker"], out)
        plot_ranker(res["ranker"], out / "ranker.png")
        done("ranker", t0)

    t0 = time.perf_counter()
    syn_root = Path(args.cache) / f"e2e-synthetic-{n_items}"  # shared with bench.e2e
    log(f"synthetic bundle: {n_items:,} items into {syn_root}")
    res["synthetic_bundle"] = _build_synthetic(base, n_items, syn_root)
    write_json("synthetic_bundle", res["synthetic_bundle"], out)
    done("synthetic_bundle", t0)
    bundle = Path(res["synthetic_bundle"]["bundle"])

    if "ann" not in skip:
        t0 = time.perf_counter()
        from bench.ann_bench import AnnBenchConfig, plot_ann, run_ann_bench
        from bench.workload import user_queries
        from shared.contracts import bundle_layout as L

        queries = user_queries(base, int(size["queries"]))
        vectors = np.load(bundle / L.ITEM_VECTORS, mmap_mode="r")
        cfg = AnnBenchConfig()
        if args.ann_trees:
            cfg.annoy_trees = tuple(int(x) for x in args.ann_trees.split(","))
        if args.ann_search_k:
            cfg.annoy_search_k = tuple(int(x) for x in args.ann_search_k.split(","))
        if args.ann_rounds:
            cfg.rounds = args.ann_rounds
        if args.smoke:
            cfg = AnnBenchConfig(annoy_trees=(5, 10), annoy_search_k=(200, 1000),
                                 hnsw_builds=((8, 40),), hnsw_ef=(100, 200), rounds=1,
                                 exact_queries=20)
        sb = res["synthetic_bundle"]
        prebuilt = {int(sb["annoy"]["item_tower"]["n_trees"]): (
            bundle / L.ITEM_INDEX, float(sb["timings_s"]["annoy item-tower index"]))}
        graphs = {}
        if sb.get("hnsw"):
            g = sb["hnsw"]["item_tower"]
            graphs[(int(g["M"]), int(g["ef_construction"]))] = (
                bundle / L.ITEM_HNSW, float(sb["timings_s"]["hnsw item_tower graph"]))
        with tempfile.TemporaryDirectory(prefix="ann-", dir=args.cache) as tmp:
            res["ann"] = run_ann_bench(vectors, queries, Path(tmp), cfg, prebuilt=prebuilt,
                                       prebuilt_graphs=graphs)
        write_json("ann", res["ann"], out)
        plot_ann(res["ann"], out / "ann_recall_latency.png")
        del vectors
        done("ann", t0)

    if "ann_content" not in skip:
        t0 = time.perf_counter()
        from bench.ann_bench import run_index_check
        from bench.workload import content_queries
        from shared.contracts import bundle_layout as L

        c_sk = int(res["synthetic_bundle"]["annoy"]["content"]["search_k"])
        c_graph = (res["synthetic_bundle"].get("hnsw") or {}).get("content")
        content = np.load(bundle / L.CONTENT_VECTORS, mmap_mode="r")
        res["ann_content"] = run_index_check(
            bundle / L.CONTENT_INDEX, content, content_queries(bundle, int(size["content_q"])),
            tuple(sorted({c_sk // 2, c_sk, c_sk * 2})), exact_queries=int(size["content_q"]) // 10,
            rounds=1 if args.smoke else 2,
            graph_path=bundle / L.CONTENT_HNSW if c_graph else None,
            efs=(100, 250, 500, 1000) if c_graph else ())
        res["ann_content"]["bundle_search_k"] = c_sk
        if c_graph:
            res["ann_content"]["hnsw"]["bundle_ef"] = int(c_graph["ef"])
            # Both graphs, as retrieval holds them, without and with huge pages.
            from bench.huge_pages import run_huge_pages_bench
            from bench.workload import user_queries

            i_graph = res["synthetic_bundle"]["hnsw"]["item_tower"]
            res["ann_content"]["huge_pages"] = run_huge_pages_bench({
                "content": (bundle / L.CONTENT_HNSW, int(content.shape[1]), int(c_graph["ef"]),
                            content_queries(bundle, int(size["content_q"]))),
                "item_tower": (bundle / L.ITEM_HNSW, int(i_graph["dim"]), int(i_graph["ef"]),
                               user_queries(base, int(size["content_q"])))},
                rounds=1 if args.smoke else 2)
        del content
        write_json("ann_content", res["ann_content"], out)
        done("ann_content", t0)

    if "service" not in skip:
        t0 = time.perf_counter()
        from bench.service_bench import run_service_bench

        # Two baselines, then what the service serves by default (auto: the bundle's HNSW
        # graphs, with huge pages), same traffic, one after the other: Annoy, and the
        # graphs without huge pages (HYBRIDREC_HUGE_PAGES=false).
        runs = {}
        variants = {"annoy": ("annoy", True), "no_huge_pages": ("auto", False),
                    "auto": ("auto", True)}
        for name, (backend, huge) in variants.items():
            with tempfile.TemporaryDirectory(prefix="svc-") as tmp:
                runs[name] = run_service_bench(
                    bundle.parent, Path(tmp), users=int(size["users"]),
                    paced=int(size["paced"]), rate=float(size["rate"]), backend=backend,
                    huge_pages=huge)
                shutil.copyfile(Path(tmp) / "retrieval.log",
                                out / f"service_retrieval_{name}.log")
        res["service"] = {**runs["auto"], "annoy_baseline": runs["annoy"],
                          "no_huge_pages_baseline": runs["no_huge_pages"]}
        write_json("service", res["service"], out)
        done("service", t0)

    if "e2e" not in skip and not args.smoke:
        t0 = time.perf_counter()
        from bench.e2e import run_e2e

        rep = run_e2e(base.parent if not args.base_bundle else base, label="ml-latest-small",
                      rates=E2E_RATES, duration_s=15.0, out_dir=out)
        res["e2e"] = e2e_summary(rep)
        done("e2e", t0)

    if "e2e_synthetic" not in skip and not args.smoke:
        t0 = time.perf_counter()
        from bench.e2e import run_e2e

        # The same harness over the synthetic catalogue (HNSW graphs, huge pages): the
        # issue's goal is stated for it.
        rep = run_e2e(bundle.parent, label=f"synthetic-{n_items}", rates=E2E_RATES,
                      duration_s=15.0, out_dir=out)
        res["e2e_synthetic"] = e2e_summary(rep)
        done("e2e_synthetic", t0)

    if "filters" not in skip:
        t0 = time.perf_counter()
        from bench.filter_bench import plot_filters, run, with_ratios
        from shared.serving.process_tuning import limit_compute_threads

        # Attribute filters on the retrieval search (mask + exact scan or widened ANN)
        # against the unfiltered search, same queries, one BLAS thread as the services.
        limit_compute_threads(1)
        sizes = sorted({min(DEMO_ITEMS, n_items), n_items})
        filters = [with_ratios(run(n, int(size["filter_queries"]), 0)) for n in sizes]
        res["filters"] = filters
        write_json("filters", {"runs": filters}, out)
        plot_filters(filters, out / "filters.png")
        done("filters", t0)

    if "redis_parser" not in skip:
        t0 = time.perf_counter()
        from bench.redis_parser import run_parsers
        from harness.processes import DEFAULT_REDIS_URL

        # redis-py's reply parsers on retrieval's user-state pipeline: why redis[hiredis].
        rounds = 200 if args.smoke else 2000
        res["redis_parser"] = run_parsers(DEFAULT_REDIS_URL, rounds, out)["rows"]
        done("redis_parser", t0)

    if "computed" not in skip and not args.smoke:
        t0 = time.perf_counter()
        from bench.computed import run_computed

        # Every answer computed: the split's CPU against the floor (the model work alone).
        rep = run_computed(base.parent if not args.base_bundle else base, out_dir=out,
                           combined=True)  # fmt: skip
        res["computed"] = rep["runs"]["current"]["summary"]
        res["computed_combined"] = rep["runs"]["combined"]["summary"]
        done("computed", t0)

    section_s["total"] = round(time.perf_counter() - t_all, 1)
    rows = summarise(res)
    table = print_table(rows)
    write_json("summary", {"n_items": n_items, "smoke": args.smoke, "sections_s": section_s,
                           "rows": [list(r) for r in rows]}, out)
    (out / "summary.md").write_text(table + "\n")
    log(f"make bench: {section_s['total']:.0f} s in total; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

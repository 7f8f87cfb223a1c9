"""``hybridrec evaluate``: per seed, split, fit every model, evaluate; then the summary.

Every seed makes its own split (``seed``, ``seed + 1``, ...). Each model is fitted
on the split's train part, makes its choices on validation and is evaluated on
test once. Per-user metrics of every model, stage and seed are kept; the summary
gives means with paired bootstrap 95% intervals (:mod:`training.evaluation.summary`),
and the online protocol (:mod:`training.evaluation.online`) runs for the models that
fold new events into a history (EASE, the two-stage system).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from shared.contracts.errors import ConfigError
from training.evaluation.base import EvalData, Recommender
from training.evaluation.baselines import (
    EASE,
    GenrePopularity,
    ItemKNN,
    Popularity,
    RandomRecommender,
)
from training.evaluation.harness import UserMetrics, run_models
from training.evaluation.metrics import DEFAULT_KS
from training.evaluation.online import fold_in_adapter, online_split, run_online
from training.evaluation.peers import ALS, PopularityOracle
from training.evaluation.report import summary_table, write_report
from training.evaluation.summary import summarize
from training.models.rp3beta import RP3betaRecommender
from training.splits import SPLIT_KINDS, make_split

#: Baseline factories by lower-case name (the ``--models`` vocabulary).
#: ``contentpopularity`` needs the content vectors: it is built with hybridrec's models.
BASELINES: dict[str, Callable[[int], Recommender]] = {
    "popularity": lambda seed: Popularity(),
    "itemknn": lambda seed: ItemKNN(),
    "ease": lambda seed: EASE(),
    "als": lambda seed: ALS(seed=seed),
    "rp3beta": lambda seed: RP3betaRecommender(alpha=None, beta=None),
    "genrepopularity": lambda seed: GenrePopularity(),
    "random": lambda seed: RandomRecommender(seed=seed),
    "oracle": lambda seed: PopularityOracle(),
}

#: Default baselines per split kind. ItemKNN, EASE and ALS score unseen items by
#: nothing but noise, so cold-items gets the content/popularity peers and the oracle.
DEFAULT_MODELS: dict[str, tuple[str, ...]] = {
    "random": ("popularity", "itemknn", "ease", "als", "rp3beta"),
    "temporal": ("popularity", "itemknn", "ease", "als", "rp3beta"),
    "temporal-user": ("popularity", "itemknn", "ease", "als", "rp3beta"),
    "cold-items": ("genrepopularity", "contentpopularity", "random", "oracle"),
}


def build_baselines(split: str, names: Sequence[str] | None = None, seed: int = 42) -> list[Any]:
    """Instantiate baselines by name (case-insensitive), or the defaults for ``split``.

    Args:
        split: Split kind.
        names: Model names from :data:`BASELINES`; None = :data:`DEFAULT_MODELS`.
        seed: Seed for seeded models.

    Returns:
        Unfitted recommenders.

    Raises:
        ConfigError: Unknown split or model name.
    """
    if split not in SPLIT_KINDS:
        raise ConfigError(f"unknown split {split!r}; expected one of {list(SPLIT_KINDS)}.")
    chosen = (
        DEFAULT_MODELS[split]
        if names is None
        else tuple(n.strip().lower() for n in names if n.strip())
    )
    unknown = [n for n in chosen if n not in BASELINES and n != "contentpopularity"]
    if unknown:
        raise ConfigError(
            f"unknown model(s) {unknown}; expected a comma-separated subset of "
            f"{sorted([*BASELINES, 'contentpopularity'])}."
        )
    return [BASELINES[n](seed) for n in chosen if n in BASELINES]


ExtraModels = Sequence[Recommender] | Callable[[int], Sequence[Recommender]]


def run_evaluate(
    data_path: str | Path,
    split: str,
    out_dir: str | Path,
    *,
    item_text: str | Path | None = None,
    seed: int = 42,
    seeds: int = 1,
    models: Sequence[str] | None = None,
    extra_models: ExtraModels | None = None,
    split_options: dict[str, Any] | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    online: bool = True,
    progress: bool = True,
    echo: bool = True,
) -> dict[str, Any]:
    """Evaluate the models over ``seeds`` splits and write the report.

    Args:
        data_path: MovieLens folder or zip (anything ``load_dataset`` reads).
        split: A kind of :data:`training.splits.SPLIT_KINDS`.
        out_dir: Folder for ``report.json/.md/.png`` and ``per_user/``.
        item_text: Optional CSV with item overviews.
        seed: First split and model seed; seed ``s`` of ``seeds`` is ``seed + s``.
            The two-stage variant is chosen on the first seed's validation and kept.
        seeds: Number of splits (different seeds).
        models: Baseline names (:data:`BASELINES`, ``contentpopularity``) and
            hybridrec's own models (:data:`training.evaluate_models.HYBRID_MODELS`);
            None = the split's default baselines.
        extra_models: Additional unfitted recommenders, or a seed -> recommenders
            factory (needed for ``seeds > 1``: a model is fitted once per seed).
        split_options: Extra keyword arguments for :func:`training.splits.make_split`.
        ks: Cut-offs.
        online: Run the online protocol (not for cold-items).
        progress: Show progress on stderr.
        echo: Print the summary table to stdout.

    Returns:
        The report dict (as written to ``report.json``): ``runs`` (one per seed)
        and ``summary``.

    Raises:
        ConfigError: Bad ``seeds`` or model names.
    """
    from training.data import load_dataset
    from training.evaluate_models import HYBRID_MODELS, build_hybrid, chosen_variants

    if seeds < 1:
        raise ConfigError(f"seeds must be >= 1, got {seeds}; use --seeds 3 for reported runs.")
    t0 = time.perf_counter()
    report: dict[str, Any] = {}
    wanted = [n.strip().lower() for n in models] if models is not None else None
    own = tuple(n for n in (wanted or []) if n in HYBRID_MODELS)
    names = wanted if wanted is not None else DEFAULT_MODELS.get(split, ())
    if "contentpopularity" in names:
        own = (*own, "contentpopularity")
    baseline_names = [n for n in wanted if n not in HYBRID_MODELS] if wanted is not None else None
    build_baselines(split, baseline_names, seed)  # validate names before the slow part
    ds = load_dataset(data_path, item_text=item_text)
    runs: list[dict[str, Any]] = []
    per_user: list[dict[str, dict[str, UserMetrics]]] = []
    online_res: list[dict[str, dict[str, UserMetrics]]] = []
    hybrid_names: list[str] = []
    user_ids: list[Any] = []
    variants: dict[str, Any] | None = None  # the two-stage variant, chosen on seed 1's valid
    for k in range(seeds):
        s = seed + k
        if progress:
            print(f"[evaluate] {split} split, seed {s} ({k + 1}/{seeds})", flush=True)
        sp = make_split(ds, split, seed=s, **(split_options or {}))
        data = EvalData.from_split(ds, sp)
        hybrid = build_hybrid(own, data, s, variants=variants)
        hybrid_names += [m.name for m in hybrid if m.name != "ContentPopularity"]
        extras = extra_models(s) if callable(extra_models) else list(extra_models or [])
        if k and extras and not callable(extra_models):
            raise ConfigError("with seeds > 1, pass extra_models as a seed -> models factory.")
        osplit = online_split(data, sp.test) if online and split != "cold-items" else None
        seed_online: dict[str, dict[str, UserMetrics]] = {}

        def after_fit(name: str, model: Any, data: EvalData = data, osplit: Any = osplit,
                      seed_online: dict[str, dict[str, UserMetrics]] = seed_online) -> None:
            scorer = fold_in_adapter(model) if osplit is not None else None
            if scorer is not None:
                seed_online[name] = run_online(scorer, data, osplit, ks)

        seed_users: dict[str, dict[str, UserMetrics]] = {}
        run = run_models(
            [*build_baselines(split, baseline_names, s), *hybrid, *extras],
            data, ks=ks, dataset=ds, split=sp, progress=progress,
            per_user=seed_users, after_fit=after_fit,
        )
        runs.append(run)
        user_ids.append(data.user_ids)
        variants = chosen_variants(hybrid) or variants
        per_user.append(seed_users)
        online_res.append(seed_online)
        # Written after every seed, so a long run leaves a report of the seeds done.
        report = {
            "dataset": runs[0]["dataset"],
            "split": {"kind": split, "seeds": [r["split"]["seed"] for r in runs],
                      "params": runs[0]["split"].get("params", {})},
            "ks": [int(k) for k in ks],
            "summary": summarize(runs, per_user, dict.fromkeys(hybrid_names), online_res,
                                 user_ids),
            "runs": runs,
            "command": _command(split, seeds, seed, models),
            "complete": k + 1 == seeds,
            "wall_seconds": time.perf_counter() - t0,
        }
        write_report(report, out_dir, per_user=per_user, online=online_res, user_ids=user_ids)
    if echo:
        print(summary_table(report))
    return report


def _command(split: str, seeds: int, seed: int, models: Sequence[str] | None) -> str:
    """The CLI call that reproduces the run (``--models`` only when not the CLI default)."""
    from training.evaluate_models import DEFAULT_HYBRID

    cmd = f"hybridrec evaluate --split {split} --seeds {seeds} --seed {seed}"
    default = [*DEFAULT_MODELS.get(split, ()), *DEFAULT_HYBRID.get(split, ())]
    if models is None or [m.strip().lower() for m in models] == default:
        return cmd
    return cmd + f" --models {','.join(models)}"

"""The ``hybridrec`` command line.

Verbs: ``data download``, ``data info``, ``data validate``, ``data convert``, ``data synth``,
``evaluate``, ``train``, ``serve``, ``events export``.
Each verb imports what it needs when it runs, so ``hybridrec --help`` is instant.
Every flag of ``serve`` can also be set as an environment variable
``HYBRIDREC_<NAME>`` (for example ``HYBRIDREC_REDIS_URL``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from shared.contracts.errors import HybridrecError

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def default_data_path() -> str:
    """The bundled MovieLens ml-latest-small zip (or ``HYBRIDREC_DATA``)."""
    return os.environ.get("HYBRIDREC_DATA", str(PROJECT_ROOT / "data" / "ml-latest-small.zip"))


def _cmd_data_download(args: argparse.Namespace) -> int:
    from training.data import download_dataset

    path = download_dataset(args.name, args.dest, force=args.force)
    print(path)
    return 0


def _cmd_data_info(args: argparse.Namespace) -> int:
    import json

    from training.data import load_dataset

    ds = load_dataset(args.data, item_text=args.item_text)
    print(json.dumps(ds.summary(), indent=2, default=str))
    return 0


def _cmd_data_validate(args: argparse.Namespace) -> int:
    from training.data.commands import run_validate

    return run_validate(args.path, schema=args.schema, as_json=args.json, max_rows=args.max_rows)


def _cmd_data_convert(args: argparse.Namespace) -> int:
    from training.data.commands import run_convert

    print(
        run_convert(
            args.source, args.out, fmt=args.format, data_dir=args.data_dir, item_text=args.item_text
        )
    )
    return 0


def _cmd_data_synth(args: argparse.Namespace) -> int:
    from training.data.synth import spec_for, write_synth

    spec = spec_for(args.like, interactions=args.interactions, users=args.users, items=args.items)
    print(write_synth(spec, args.out, seed=args.seed))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from training.evaluate_cmd import DEFAULT_MODELS, run_evaluate
    from training.evaluate_models import DEFAULT_HYBRID

    models = (
        args.models.split(",")
        if args.models
        else [*DEFAULT_MODELS[args.split], *DEFAULT_HYBRID[args.split]]
    )
    run_evaluate(
        args.data,
        args.split,
        args.out,
        item_text=args.item_text,
        seed=args.seed,
        seeds=args.seeds,
        models=models,
        online=args.online,
    )
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from training.data.event_weights import parse_weights_flag
    from training.pipeline import run_train

    bundle = run_train(
        data=args.data,
        out=args.out,
        item_text=args.item_text,
        seed=args.seed,
        config_path=args.config,
        quick=args.quick,
        hnsw=args.hnsw,
        include_fresh=args.include_fresh,
        events=args.events,
        implicit_rating=None if args.implicit_rating < 0 else args.implicit_rating,
        event_weights=parse_weights_flag(args.event_weights) if args.event_weights else None,
    )
    print(bundle)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from services.runner import serve

    return serve(args)


def _cmd_events_export(args: argparse.Namespace) -> int:
    from shared.stores.export import export_events

    n = export_events(
        args.out,
        redis_url=args.redis_url or os.environ.get("HYBRIDREC_REDIS_URL"),
        state_dir=args.state_dir or os.environ.get("HYBRIDREC_STATE_DIR", "state"),
        prefix=os.environ.get("HYBRIDREC_REDIS_PREFIX", "hybridrec"),
    )
    print(f"{n} events written to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every verb."""
    parser = argparse.ArgumentParser(
        prog="hybridrec",
        description="Hybrid two-stage recommender: data, training, evaluation and services.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="download, convert, validate or inspect datasets")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    dl = data_sub.add_parser("download", help="download a MovieLens release (sha256 checked)")
    dl.add_argument("name", choices=["ml-latest-small", "ml-100k", "ml-1m", "ml-25m", "ml-32m"])
    dl.add_argument("--dest", default="data", help="folder to write NAME.zip into")
    dl.add_argument("--force", action="store_true", help="download again even if present")
    dl.set_defaults(func=_cmd_data_download)
    info = data_sub.add_parser("info", help="load a dataset and print its summary")
    info.add_argument("--data", default=default_data_path())
    info.add_argument("--item-text", default=None, help="CSV with an overview column")
    info.set_defaults(func=_cmd_data_info)
    val = data_sub.add_parser(
        "validate",
        help="check a dataset folder in hybridrec's format (docs/own-data.md); "
        "exit code 1 on errors",
    )
    val.add_argument("path", help="folder holding interactions.* and items.* (csv, parquet, jsonl)")
    val.add_argument("--schema", default=None, help="schema file (default: PATH/schema.yaml)")
    val.add_argument("--json", action="store_true", help="print the report as JSON")
    val.add_argument("--max-rows", type=int, default=20, help="rows listed per problem")
    val.set_defaults(func=_cmd_data_validate)
    conv = data_sub.add_parser(
        "convert", help="write a MovieLens release in hybridrec's dataset format"
    )
    conv.add_argument(
        "source",
        help="release name (ml-latest-small, ml-100k, ml-1m, ml-25m, "
        "ml-32m: read from --data-dir/NAME.zip) or a release folder/zip",
    )
    conv.add_argument("out", help="new folder to write")
    conv.add_argument("--format", choices=["csv", "parquet", "jsonl"], default="csv")
    conv.add_argument(
        "--data-dir", default=str(PROJECT_ROOT / "data"), help="where `data download` put the zips"
    )
    conv.add_argument("--item-text", default=None, help="CSV with an overview column")
    conv.set_defaults(func=_cmd_data_convert)
    syn = data_sub.add_parser(
        "synth",
        help="generate a seeded MovieLens-shaped dataset (Zipf popularity, latent topics) "
        "in hybridrec's format (Parquet)",
    )
    syn.add_argument("out", help="new folder to write")
    syn.add_argument("--like", default="ml-25m",
                     choices=["ml-25m", "ml-32m", "ml-1m", "ml-latest-small"],
                     help="the release whose shape (users, items, ratings) to copy")
    syn.add_argument("--interactions", type=int, default=None,
                     help="scale to this many interactions (users scale along)")
    syn.add_argument("--users", type=int, default=None, help="override the number of users")
    syn.add_argument("--items", type=int, default=None, help="override the number of items")
    syn.add_argument("--seed", type=int, default=0)
    syn.set_defaults(func=_cmd_data_synth)

    ev = sub.add_parser("evaluate", help="offline evaluation against strong baselines")
    ev.add_argument(
        "--data",
        default=default_data_path(),
        help="a folder in hybridrec's dataset format (docs/own-data.md) or a MovieLens folder/.zip",
    )
    ev.add_argument(
        "--split", choices=["random", "temporal", "temporal-user", "cold-items"], default="random"
    )
    ev.add_argument("--out", default="reports", help="folder for report.json/.md/.png")
    ev.add_argument("--item-text", default=None, help="CSV with an overview column")
    ev.add_argument("--seed", type=int, default=42, help="first seed (seed s of N is seed + s)")
    ev.add_argument(
        "--seeds", type=int, default=1, help="splits, one per seed (3 for the reported runs)"
    )
    ev.add_argument(
        "--online",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the online protocol (events fed through the serving path)",
    )
    ev.add_argument(
        "--models",
        default=None,
        help="comma-separated models: popularity, itemknn, ease, als, genrepopularity, "
        "contentpopularity, random, oracle, content, twotower, twostage "
        "(default: the split's baselines + hybridrec's models)",
    )
    ev.set_defaults(func=_cmd_evaluate)

    tr = sub.add_parser("train", help="raw MovieLens data -> a verified artifact bundle")
    tr.add_argument(
        "--data",
        default=default_data_path(),
        help="a folder in hybridrec's dataset format (docs/own-data.md) or a MovieLens folder/.zip",
    )
    tr.add_argument("--item-text", default=None, help="CSV with an overview column")
    tr.add_argument("--out", default="artifacts", help="bundle root (gets <version>/ and latest)")
    tr.add_argument("--seed", type=int, default=42)
    tr.add_argument("--config", default=None, help="JSON file overriding the training config")
    tr.add_argument(
        "--quick", action="store_true", help="tiny epochs, for smoke tests (not for serving)"
    )
    tr.add_argument(
        "--hnsw",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also build HNSW graphs (hnswlib) over both vector sets; retrieval serves large "
        "catalogues from them (HYBRIDREC_ANN_BACKEND=auto). Default: above 100,000 items",
    )
    tr.add_argument(
        "--include-fresh",
        action="store_true",
        help="add items created with POST /v1/items and apply the changes made with PATCH "
        "/v1/items/{id} (attributes, availability) (read from HYBRIDREC_REDIS_URL or "
        "HYBRIDREC_STATE_DIR) to the catalogue",
    )
    tr.add_argument(
        "--events",
        action="append",
        default=[],
        metavar="PARQUET",
        help="feedback events written by `hybridrec events export`, folded into the "
        "interactions (repeatable)",
    )
    tr.add_argument(
        "--implicit-rating",
        type=float,
        default=4.0,
        help="rating given to view/click events from --events and to positive events without "
        "a rating in a hybridrec-format --data (negative: leave --events' ones out)",
    )
    tr.add_argument(
        "--event-weights",
        default="",
        metavar="EVENT=W,...",
        help="weight of each event type in a pair's confidence (summed over its events), "
        "over the schema's events: and the defaults view=1,click=2,add_to_cart=3,like=4,"
        "purchase=5,rating=value (a rating weighs its value); 0 leaves a type out",
    )
    tr.set_defaults(func=_cmd_train)

    sv = sub.add_parser("serve", help="run the services (each flag also HYBRIDREC_<NAME>)")
    sv.add_argument(
        "service",
        nargs="?",
        default="all",
        choices=["all", "combined", "gateway", "retrieval", "ranking"],
        help="all: the three services as separate processes (default); combined: all three "
        "in one process serving the gateway's API (no internal HTTP hops); or one service",
    )
    sv.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes of a single service or of combined, sharing its port (uvicorn's "
        "workers; each loads the bundle)",
    )
    sv.add_argument("--host", default=None, help="bind address (HYBRIDREC_HOST)")
    sv.add_argument("--port", type=int, default=None, help="port (HYBRIDREC_PORT)")
    sv.add_argument("--artifacts", default=None, help="bundle root or folder (HYBRIDREC_ARTIFACTS)")
    sv.add_argument("--redis-url", default=None, help="Redis URL (HYBRIDREC_REDIS_URL)")
    sv.add_argument("--retrieval-url", default=None, help="HYBRIDREC_RETRIEVAL_URL")
    sv.add_argument("--ranking-url", default=None, help="HYBRIDREC_RANKING_URL")
    sv.set_defaults(func=_cmd_serve)
    evs = sub.add_parser("events", help="feedback events stored by the gateway")
    evs_sub = evs.add_subparsers(dest="events_command", required=True)
    exp = evs_sub.add_parser("export", help="write every stored event to parquet")
    exp.add_argument("--out", default="events.parquet", help="parquet file to write")
    exp.add_argument("--redis-url", default=None, help="Redis URL (HYBRIDREC_REDIS_URL)")
    exp.add_argument("--state-dir", default=None, help="spool folder (HYBRIDREC_STATE_DIR)")
    exp.set_defaults(func=_cmd_events_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hybridrec`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except HybridrecError as exc:
        print(f"hybridrec: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

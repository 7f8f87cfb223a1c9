"""Schema fuzzing: schemathesis against each service's OpenAPI schema, on live processes.

One stack (retrieval, ranking, gateway as real processes, real Redis under a key
prefix of its own, the default config: no API keys, no admin key) serves the
module; the first test proves each process serves exactly the schema fuzzed here
(the one its code builds, which ``docs/openapi/*.json`` also is). For every
operation of every service schemathesis sends the schema's examples, its coverage
cases (boundaries, missing and wrong-typed fields) and ``MAX_EXAMPLES`` generated
cases, valid and invalid, and checks each answer:

* ``not_a_server_error``: never a 5xx,
* ``status_code_conformance``: only documented status codes,
* ``content_type_conformance``: the documented media type,
* ``response_schema_conformance``: the body matches the documented model (errors
  the shared ``ErrorResponse``).

A second, smaller run fuzzes a gateway started with ``HYBRIDREC_API_KEYS`` set and
sends no valid key: every ``/v1`` answer must be a documented, conforming error
(the gateway's admin routes answer 401 in both runs: no admin key is set). Runs are
deterministic (fixed seed, no example database, no shrinking). No operation is
excluded: writes (new items, events, history) land in this module's own Redis
prefix and state folder; ``/metrics`` is checked as the text it documents; the
internal services' admin reload (open when no admin key is set) reloads the one
bundle there is, or answers 404 for names that do not exist. The last test checks
how many cases each operation got.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis import Case

from harness.processes import ServiceProcess, free_port, running_stack
from hybridrec.openapi_export import openapi_spec

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 100  # generated cases per operation (the fuzzing phase)
KEYED_MAX_EXAMPLES = 20  # the run without a key only has to show the 401s conform
SEED = 20_260_101
API_KEY = "fuzz-key-0123456789"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
FUZZ_SETTINGS = settings(
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)

# Hypothesis caches unicode tables and the constants of local modules in its home
# folder (``.hypothesis`` in the working directory by default); the schemas below draw
# their examples at collection already, so the folder moves before they are built.
HYPOTHESIS_HOME = tempfile.TemporaryDirectory(prefix="hybridrec-hypothesis-")
set_hypothesis_home_dir(HYPOTHESIS_HOME.name)

# (run, service, "METHOD /path", phase) -> cases sent; filled by the fuzz tests.
CASES: Counter[tuple[str, str, str, str]] = Counter()
SECONDS: Counter[tuple[str, str, str]] = Counter()  # (run, service, label) -> time spent
# (run, service) -> {"METHOD /path": generated cases it must get}; filled as schemas load.
EXPECTED: dict[tuple[str, str], dict[str, int]] = {}


def fuzz_config(max_examples: int, *, coverage: bool = True) -> schemathesis.Config:
    """Deterministic generation, the four checks above and nothing else."""
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
            "request-timeout": 30,
            "generation": {
                "mode": "all",
                "max-examples": max_examples,
                "deterministic": True,
                "database": "none",
                "no-shrink": True,
            },
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": coverage},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": False},
            },
            "checks": {
                "enabled": False,
                **{name: {"enabled": True} for name in CHECKS},
            },
        }
    )


@pytest.fixture(scope="module")
def stack(
    small_bundle: Path, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServiceProcess]]:
    prefix = f"hrfuzz-{uuid.uuid4().hex[:8]}"
    with running_stack(
        small_bundle, tmp_path_factory.mktemp("schema-fuzz"), redis_url=redis_url, prefix=prefix
    ) as procs:
        yield procs


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    """One session for every case: kept-alive connections, no proxy from the environment."""
    with requests.Session() as s:
        s.trust_env = False
        yield s


@pytest.fixture(scope="module")
def keyed_gateway(stack: dict[str, ServiceProcess]) -> Iterator[ServiceProcess]:
    """A second gateway on the same retrieval and ranking, with API keys required."""
    gw = stack["gateway"]
    port = free_port()
    env = {
        **gw.env,
        "HYBRIDREC_PORT": str(port),
        "HYBRIDREC_API_KEYS": API_KEY,
        "HYBRIDREC_STATE_DIR": str(gw.log_path.parent / "state-keyed"),
    }
    proc = ServiceProcess("gateway", port, env, gw.log_path.parent / "gateway-keyed.log").start()
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


def _expected(run: str, service: str, spec: dict[str, Any], max_examples: int) -> None:
    """Remember how many generated cases each operation of a run must get."""
    EXPECTED[(run, service)] = {
        f"{method.upper()} {path}": max_examples
        if op.get("parameters") or op.get("requestBody")
        else 1  # nothing to vary: Hypothesis stops once the one request is sent
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    }


def _schema(run: str, service: str, max_examples: int) -> Any:
    """The schema the service's code serves (built without starting it; nothing loads)."""
    spec = openapi_spec(service)
    _expected(run, service, spec, max_examples)
    # The run without a key skips the coverage cases: behind the key every input gets a 401.
    config = fuzz_config(max_examples, coverage=run != "keyed")
    return schemathesis.openapi.from_dict(spec, config=config)


# Collection needs the operations before any process runs; the first test below
# proves the running services serve exactly these documents.
GATEWAY = _schema("open", "gateway", MAX_EXAMPLES)
RETRIEVAL = _schema("open", "retrieval", MAX_EXAMPLES)
RANKING = _schema("open", "ranking", MAX_EXAMPLES)
KEYED_GATEWAY = _schema("keyed", "gateway", KEYED_MAX_EXAMPLES)


def _call(run: str, service: str, case: Case, base_url: str, session: requests.Session) -> Any:
    """Send one case to the live service, count it, and apply the configured checks."""
    phase = case.meta.phase.name.value if case.meta is not None else "unknown"
    CASES[(run, service, case.operation.label, phase)] += 1
    start = time.perf_counter()
    try:
        return case.call_and_validate(base_url=base_url, session=session, timeout=30)
    finally:
        SECONDS[(run, service, case.operation.label)] += time.perf_counter() - start


def test_live_services_serve_the_fuzzed_schemas(
    stack: dict[str, ServiceProcess], keyed_gateway: ServiceProcess
) -> None:
    procs = {**stack, "keyed gateway": keyed_gateway}
    for name, proc in procs.items():
        live = httpx.get(f"{proc.url}/openapi.json", timeout=30).json()
        assert live == openapi_spec(proc.name), f"{name} serves another schema than its code"


@GATEWAY.parametrize()
@FUZZ_SETTINGS
def test_gateway_conforms_to_its_schema(
    case: Case, stack: dict[str, ServiceProcess], session: requests.Session
) -> None:
    _call("open", "gateway", case, stack["gateway"].url, session)


@RETRIEVAL.parametrize()
@FUZZ_SETTINGS
def test_retrieval_conforms_to_its_schema(
    case: Case, stack: dict[str, ServiceProcess], session: requests.Session
) -> None:
    _call("open", "retrieval", case, stack["retrieval"].url, session)


@RANKING.parametrize()
@FUZZ_SETTINGS
def test_ranking_conforms_to_its_schema(
    case: Case, stack: dict[str, ServiceProcess], session: requests.Session
) -> None:
    _call("open", "ranking", case, stack["ranking"].url, session)


@KEYED_GATEWAY.parametrize()
@FUZZ_SETTINGS
def test_gateway_without_a_key_answers_conforming_401s(
    case: Case, keyed_gateway: ServiceProcess, session: requests.Session
) -> None:
    response = _call("keyed", "gateway", case, keyed_gateway.url, session)
    if case.path.startswith("/v1/") and case.method.upper() == case.operation.method.upper():
        # Nothing behind the key succeeds without it; a broken body may be found first.
        assert response.status_code in (401, 413, 422), (response.status_code, response.text)


def test_every_operation_got_its_cases() -> None:
    """Each operation got MAX_EXAMPLES generated cases (1 when it takes no input).

    Reads what the fuzz tests above recorded: it passes only after the whole module ran.
    """
    report = []
    for (run, service), expected in sorted(EXPECTED.items()):
        for label, minimum in sorted(expected.items()):
            by_phase = {
                phase: n
                for (r, s, lab, phase), n in CASES.items()
                if (r, s, lab) == (run, service, label)
            }
            spent = SECONDS[(run, service, label)]
            report.append(f"{run:5} {service:9} {label:42} {spent:6.1f}s {by_phase}")
            generated = by_phase.get("fuzzing", 0)
            assert generated >= minimum, f"{run} {service} {label}: {by_phase}, want {minimum}"
    total = sum(CASES.values())
    print("\n".join([f"cases per operation ({total} in all):", *report]))
    assert total >= MAX_EXAMPLES * sum(
        1 for (run, _), exp in EXPECTED.items() if run == "open" for m in exp.values() if m > 1
    ), total


def test_no_traceback_in_any_service_log(
    stack: dict[str, ServiceProcess], keyed_gateway: ServiceProcess
) -> None:
    """The fuzzing left no stack trace behind (background tasks included)."""
    for proc in [*stack.values(), keyed_gateway]:
        assert proc.proc is not None and proc.proc.poll() is None, proc.tail()
        log = proc.log_path.read_text(errors="replace")
        assert "Traceback" not in log, f"{proc.name}:\n{log[-4000:]}"

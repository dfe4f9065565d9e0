"""malloc's transparent huge pages: when the command re-executes itself, and that it does."""

import os
import subprocess
import sys

import pytest

from stn_icnn_jax import __version__, huge_pages

GLIBC = (2, 36)


def test_the_tunable_is_appended_to_the_ones_already_set():
    env = {"PATH": "/bin", "GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}
    new = huge_pages.environment_with_huge_pages(env, GLIBC, "madvise")
    assert new == {"PATH": "/bin",
                   "GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"}
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2"  # not modified in place
    assert huge_pages.environment_with_huge_pages({}, GLIBC, "always") == {
        "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}


@pytest.mark.parametrize("env, glibc, thp", [
    ({"STN_ICNN_HUGE_PAGES": "0"}, GLIBC, "madvise"),           # opted out
    ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, GLIBC, "madvise"),  # the user's choice
    ({"GLIBC_TUNABLES": "a.b=1:glibc.malloc.hugetlb=1"}, GLIBC, "madvise"),  # already on
    ({}, (2, 34), "madvise"),                                   # glibc without the tunable
    ({}, None, "madvise"),                                      # not glibc (macOS, musl)
    ({}, GLIBC, "never"),                                       # THP off in the kernel
    ({}, GLIBC, None),                                          # no THP at all
])
def test_nothing_to_do(env, glibc, thp):
    assert huge_pages.environment_with_huge_pages(env, glibc, thp) is None


def test_thp_mode_is_the_bracketed_word(tmp_path):
    path = tmp_path / "enabled"
    path.write_text("always [madvise] never\n")
    assert huge_pages.thp_mode(str(path)) == "madvise"
    path.write_text("[always] madvise never\n")
    assert huge_pages.thp_mode(str(path)) == "always"
    assert huge_pages.thp_mode(str(tmp_path / "missing")) is None


def test_glibc_version():
    assert huge_pages.glibc_version("glibc 2.36") == (2, 36)
    assert huge_pages.glibc_version("glibc 2.35.1") == (2, 35)
    assert huge_pages.glibc_version("") is None
    assert huge_pages.glibc_version("musl 1.2") is None


def test_split_tunables():
    env = {"GLIBC_TUNABLES": "a.b=1:glibc.malloc.hugetlb=0::glibc.malloc.arena_max=2"}
    assert huge_pages.split_tunables(env) == (["a.b=1", "glibc.malloc.arena_max=2"], ["0"])
    assert huge_pages.split_tunables({}) == ([], [])


def _applies_here() -> bool:
    return huge_pages.supported(huge_pages.glibc_version(), huge_pages.thp_mode())


# The program prints the tunables it started with, then runs the command's entry point,
# which re-executes it once: the second print shows the child's environment.
PROGRAM = ("import os, sys; print('tunables', os.environ.get('GLIBC_TUNABLES')); "
           "sys.argv = ['stn-icnn', '--version']; "
           "from stn_icnn_jax.cli.main import main; sys.exit(main())")


def _run(extra_env: dict) -> list[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("GLIBC_TUNABLES", huge_pages.OPT_OUT)}
    out = subprocess.run([sys.executable, "-c", PROGRAM], env={**env, **extra_env},
                         capture_output=True, text=True, timeout=120, check=True)
    return out.stdout.splitlines()


@pytest.mark.skipif(not _applies_here(), reason="needs glibc >= 2.35 and transparent "
                    "huge pages not 'never' (the machines this project runs on have both)")
def test_the_command_reexecutes_itself_once_with_huge_pages():
    lines = _run({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    assert lines == ["tunables glibc.malloc.arena_max=2",
                     "tunables glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1",
                     f"stn-icnn {__version__} (malloc huge pages: on)"]
    # opted out, or the user's own setting: no second process, and it says off
    assert _run({"STN_ICNN_HUGE_PAGES": "0"}) == [
        "tunables None", f"stn-icnn {__version__} (malloc huge pages: off)"]
    assert _run({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}) == [
        "tunables glibc.malloc.hugetlb=0", f"stn-icnn {__version__} (malloc huge pages: off)"]


def test_called_as_a_library_function_it_never_reexecutes(capsys):
    from stn_icnn_jax.cli.main import main

    with pytest.raises(SystemExit):  # --version exits; this process is still the test's
        main(["--version"])
    assert f"stn-icnn {__version__}" in capsys.readouterr().out

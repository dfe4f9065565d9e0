"""The timing function (stn_icnn_jax/benchmark.py) and `stn-icnn bench` on tiny shapes."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import training_helpers
from stn_icnn_jax import benchmark, cli, huge_pages

TINY = ["--config.model.icnn_channels=4,8", "--config.model.num_interlink_layers=1",
        "--config.model.localizer_channels=4,4,8,8,8,8,8,8", "--config.model.rough_size=32",
        "--config.model.crop_size=17"]


def _conv(padding):
    return lambda x, w: jax.lax.conv_general_dilated(
        x, w, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))


def test_flops_of_one_conv_layer_are_the_hand_count():
    n, h, cin, cout, k = 2, 16, 3, 4, 3
    x, w = jnp.ones((n, h, h, cin)), jnp.ones((k, k, cin, cout))
    valid = benchmark.time_jitted(_conv("VALID"), x, w, reps=2)
    assert valid.flops == 2 * n * (h - k + 1) ** 2 * cin * cout * k * k
    # SAME: XLA counts the taps that land inside the image: per axis 16 outputs x 3
    # taps minus the 2 that fall on the padding.
    same = benchmark.time_jitted(_conv("SAME"), x, w, reps=2)
    assert same.flops == 2 * n * (h * k - 2) ** 2 * cin * cout
    assert 0 < same.min_s <= same.median_s <= same.max_s
    assert same.compile_s > 0 and same.reps == 2
    assert same.gflops_per_s == pytest.approx(same.flops / same.median_s / 1e9)


def test_carried_state_is_fed_back_and_the_callers_copy_survives_donation():
    state = jnp.zeros((3,))
    step = lambda s, x: (s + x, jnp.sum(s))  # noqa: E731
    timing, (final, _) = benchmark.time_jitted(step, state, jnp.ones((3,)), reps=4, warmup=2,
                                               carry=True, donate_carry=True,
                                               return_output=True)
    np.testing.assert_array_equal(final, np.full(3, 6.0))  # 2 warm-up + 4 timed calls
    np.testing.assert_array_equal(state, np.zeros(3))  # not donated away
    assert timing.reps == 4


def _bench_json(capsys, argv):
    assert cli.main(["bench", *argv, "--batch", "2", "--canvas", "64", "--reps", "2",
                     "--json", *TINY]) == 0
    return json.loads(capsys.readouterr().out)


def test_bench_train_json(capsys):
    out = _bench_json(capsys, ["train", "--stage", "rough", "--preset", "paper"])
    assert (out["stage"], out["preset"], out["batch"], out["reps"]) == ("rough", "paper", 2, 2)
    assert 0 < out["min_s"] <= out["median_s"] <= out["max_s"] < 60
    assert out["compile_s"] > 0 and out["first_call_s"] > 0
    assert 0 < out["lower_s"] < out["compile_s"]  # tracing + lowering, then XLA's part
    # forward alone: the first conv 3->4 at 32x32, 3x3 SAME, batch 2; a train step is more.
    assert out["flops"] > 2 * 2 * (32 * 3 - 2) ** 2 * 3 * 4
    assert out["gflops_per_s"] == pytest.approx(out["flops"] / out["median_s"] / 1e9)


def test_bench_parse_json(capsys):
    out = _bench_json(capsys, ["parse", "--preset", "authors"])
    assert out["preset"] == "authors" and out["batch"] == 2
    assert out["median_s"] > 0 and out["compile_s"] > 0 and out["flops"] > 0
    assert out["per_face_s"] == pytest.approx(out["median_s"] / 2)
    for half in ("network", "paste_back"):
        assert out[half]["median_s"] > 0 and out[half]["compile_s"] > 0


def test_bench_usage_errors_are_one_line(capsys):
    assert cli.main(["bench", "train", "--stage", "rough", "--config.model.nope=1"]) == 2
    assert capsys.readouterr().err == ("error: --config.model.nope: no field 'nope' in the "
                                       "config (typo?)\n")
    assert cli.main(["bench", "parse", "--batch", "0"]) == 2
    assert capsys.readouterr().err == ("error: stn-icnn bench: --batch and --reps must be >= 1, "
                                       "--warmup >= 0\n")


@pytest.mark.skipif(not huge_pages.supported(huge_pages.glibc_version(),
                                              huge_pages.thp_mode()),
    reason="needs glibc >= 2.35 and transparent huge pages not 'never'")
def test_huge_pages_script_measures_each_setting_in_its_own_process(tmp_path):
    script = training_helpers.experiment_script("bench_huge_pages")
    out = tmp_path / "table.md"
    # measure() raises unless each child process reports the setting it was given
    script.main(["--stage", "rough", "--batch", "2", "--canvas", "64", "--reps", "2",
                 "--rounds", "1", "--out", str(out), *TINY])
    row = [line for line in out.read_text().splitlines() if line.startswith("| rough |")]
    assert len(row) == 1
    cells = [c.strip() for c in row[0].strip("|").split("|")]
    off, on = float(cells[1]), float(cells[2])  # printed at 3 decimals: +-0.0005 s
    ratio = float(cells[3].rstrip("x"))
    assert (off - 5e-4) / (on + 5e-4) - 0.005 <= ratio <= (off + 5e-4) / (on - 5e-4) + 0.005
    assert int(cells[4].replace(",", "")) > 0 and int(cells[5].replace(",", "")) > 0


@pytest.mark.slow
def test_frameworks_script_times_ours_in_a_bench_process_of_its_own(tmp_path):
    pytest.importorskip("torch")
    script = training_helpers.experiment_script("bench_frameworks")
    out = tmp_path / "table.md"
    script.main(["--quick", "--only", "paper:rough", "--batch", "2", "--canvas", "64",
                 "--reps", "1", "--peak_n", "256", "--out", str(out)])
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| paper | rough |")]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    torch_ms, torch_cl_ms, ours_ms = float(cells[3]), float(cells[4]), float(cells[5])
    ratio = float(cells[6].rstrip("x"))  # best torch / ours, from unrounded times
    best = min(torch_ms, torch_cl_ms)
    assert (best - 0.5) / (ours_ms + 0.5) - 0.005 <= ratio <= (best + 0.5) / (ours_ms - 0.5) + 0.005
    supported = huge_pages.supported(huge_pages.glibc_version(), huge_pages.thp_mode())
    # the child process re-executed itself with huge pages where the platform has them
    assert f"malloc huge pages on in {int(supported)} of 1 rows" in text
    assert "PyTorch: in this process, malloc huge pages off" in text


@pytest.mark.slow
def test_xla_flags_script_times_each_setting_and_reports_a_failing_one(tmp_path):
    script = training_helpers.experiment_script("bench_xla_flags")
    out = tmp_path / "table.md"
    script.main(["--stage", "rough", "--batch", "2", "--canvas", "64", "--reps", "1",
                 "--flags=", "--flags=--xla_backend_optimization_level=1",
                 "--flags=--xla_no_such_flag=1", "--out", str(out), *TINY])
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")[1:]]
            for line in out.read_text().splitlines()
            if line.startswith("| ") and not line.startswith("| XLA_FLAGS")}
    assert set(rows) == {"(none)", "`--xla_backend_optimization_level=1`",
                         "`--xla_no_such_flag=1`"}
    assert rows["`--xla_no_such_flag=1`"][0].startswith("failed")
    for name in ("(none)", "`--xla_backend_optimization_level=1`"):
        compile_s, lower_s, xla_s = (float(rows[name][k]) for k in range(3))
        assert 0 < lower_s < compile_s and abs(lower_s + xla_s - compile_s) <= 0.11
    assert rows["(none)"][4:] == ["1.00", "1.00"]  # the first setting is the reference
    level1 = rows["`--xla_backend_optimization_level=1`"]
    assert float(level1[4]) == pytest.approx(float(level1[0]) / float(rows["(none)"][0]),
                                             abs=0.06)

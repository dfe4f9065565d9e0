"""The rules a run follows besides its steps: the learning-rate halving schedule, the
best-epoch selection (ties and NaN), the shipped configs, and where the data comes from."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from stn_icnn_jax.config import base_config, build, load_config
from stn_icnn_jax.data.sources import load_sources
from stn_icnn_jax.model import icnn
from stn_icnn_jax.train import checkpoints, loop, stages, step

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "experiments" / "configs").glob("*.py"))


def test_learning_rate_is_halved_every_configured_epochs():
    """Adam's first updates under a constant gradient are -lr_t * sign(g) (up to eps), so
    the update sizes read off the schedule: halved every 2 epochs of 3 steps."""
    config = stages.StageConfig(learning_rates={"parts": 0.01}, halve_every_epochs=2)
    params = {"parts": jnp.ones(3), "rough": jnp.ones(2)}
    tx = step.make_optimizer(config, steps_per_epoch=3, params=params)
    state = tx.init(params)
    grads = {"parts": jnp.full(3, 0.5), "rough": jnp.full(2, 0.5)}
    sizes = []
    for _ in range(13):
        updates, state = tx.update(grads, state, params)
        sizes.append(float(-updates["parts"][0]))
        assert float(jnp.abs(updates["rough"]).max()) == 0.0  # frozen: no update at all
    expected = [0.01] * 6 + [0.005] * 6 + [0.0025]
    np.testing.assert_allclose(sizes, expected, rtol=1e-4)  # float32 Adam arithmetic


@pytest.mark.parametrize("selection, best, expected", [
    (0.5, None, True),            # anything beats no best
    (float("nan"), None, True),
    (0.6, 0.5, True),
    (0.5, 0.5, False),            # a tie keeps the earlier epoch
    (0.4, 0.5, False),
    (float("nan"), 0.1, False),   # NaN never improves
    (0.1, float("nan"), True),    # a number beats a NaN best
])
def test_improves_rules(selection, best, expected):
    assert loop.improves(selection, best) is expected


def test_checkpoint_ranking_keeps_the_epoch_the_loop_calls_best():
    """orbax keeps the checkpoint of largest ``best_rank``: it must be the one the loop's
    ``improves`` picked, for ties and NaN too."""
    rng = np.random.default_rng(0)
    for trial in range(200):
        values = rng.choice([0.1, 0.2, 0.3, float("nan")], size=rng.integers(1, 7))
        best_step, best = None, None
        for step_index, value in enumerate(values, start=1):
            if loop.improves(float(value), best):
                best_step, best = step_index, float(value)
        records = [{"selection": float(v), "step": i} for i, v in enumerate(values, start=1)]
        kept = max(records, key=checkpoints.best_rank)
        assert kept["step"] == best_step, (trial, values)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_build_their_typed_configs(path):
    config = load_config(path)
    model = build.model_config(config)
    assert model.crop_size % 2 == 1 and model.rough_size == config.model.rough_size
    for name in config.stage_order:
        stage = build.stage_config(config, name)
        assert stage.epochs == config.stages[name].epochs > 0
        assert any(stage.trains(n) for n in stages.STAGES[name].networks), name
    inputs = build.input_config(config, 2, training=True)
    assert inputs.canvas_size == model.canvas_size == config.data.canvas_size


def test_paper_config_is_table_1_for_helen():
    config = load_config(Path(CONFIGS[0]).with_name("helen.py"))
    rates = {name: build.stage_config(config, name).learning_rates for name in stages.STAGE_NAMES}
    assert rates["rough"] == {"rough": 0.0023} and rates["localizer"] == {"localizer": 0.0017}
    assert rates["end_to_end"] == {"rough": 1e-4, "localizer": 1e-4, "parts": 1e-2}
    assert config.train.batch_size == 32 and config.model.crop_size == 81


def test_a_config_written_before_a_key_was_added_still_matches(tmp_path):
    """A work directory's config.json without ``model.localizer_scale`` (written before
    the key existed) is the base config's ``"predicted"``: resuming it with the same
    settings is allowed, with ``"native"`` refused, and it builds a ``"predicted"`` model.
    Likewise without ``data.photometric``: ``"none"``, and ``"default"`` refused."""
    old = json.loads(base_config().to_json(sort_keys=True))
    del old["model"]["localizer_scale"], old["model"]["mirrored_pass"], old["data"]["photometric"]
    del old["model"]["rough_background_logit"]
    (tmp_path / "config.json").write_text(json.dumps(old))
    checkpoints.check_or_write_config(tmp_path, base_config().to_json(sort_keys=True))
    for key, there, now in [("model.localizer_scale", "predicted", "native"),
                            ("data.photometric", "none", "default")]:
        changed = base_config()
        build.apply_override(changed, key, now)
        with pytest.raises(checkpoints.ConfigMismatchError,
                           match=f"{key}: '{there}' there, '{now}' now"):
            checkpoints.check_or_write_config(tmp_path, changed.to_json(sort_keys=True))
    assert json.loads((tmp_path / "config.json").read_text()) == old  # never rewritten
    model = build.model_config(ml_collections.ConfigDict(old))
    assert model.localizer_scale == "predicted" and model.mirrored_pass == "joint"
    assert model.rough_background_logit == 0.0


@pytest.mark.parametrize("preset", ["paper", "authors"])
def test_head_switches_build_the_head_they_name(preset):
    """``model.rough_head`` / ``model.parts_head``: "preset" keeps the preset's head
    (paper reading: BN + ReLU after the second head conv; authors: none), "bn_relu" /
    "plain" force it for that network only; the parameters follow (a plain head has no
    ``last_con2_bnm``); a config written before the keys existed builds the preset's
    heads; typos are refused."""
    config = base_config()
    config.model.icnn_preset = preset
    model = build.model_config(config)
    assert model.parts.head_conv2_norm_act is model.rough.head_conv2_norm_act is (preset == "paper")
    old = json.loads(config.to_json(sort_keys=True))
    del old["model"]["rough_head"], old["model"]["parts_head"]
    assert build.model_config(ml_collections.ConfigDict(old)) == model
    for network, other in (("parts", "rough"), ("rough", "parts")):
        for head, norm_act in (("bn_relu", True), ("plain", False)):
            changed = base_config()
            changed.model.icnn_preset = preset
            changed.model[f"{network}_head"] = head
            built = build.model_config(changed)
            assert getattr(built, network).head_conv2_norm_act is norm_act
            assert getattr(built, other) == getattr(model, other)
            params = jax.eval_shape(lambda: icnn.ICNN(getattr(built, network)).init(
                jax.random.key(0), jnp.zeros((1, 16, 16, 3)), train=False))["params"]
            assert ("last_con2_bnm" in params) is norm_act
    config.model.parts_head = "relu"
    with pytest.raises(ValueError, match="model.parts_head must be one of"):
        build.model_config(config)


def test_overrides_parse_values_and_refuse_typos(tmp_path):
    path = Path(CONFIGS[0]).with_name("smoke.py")
    config = load_config(path, ["--config.train.batch_size=16",
                                "--config.stage_order=rough,parts",
                                "--config.stages.parts.learning_rates", "{'parts': 0.5}"])
    assert config.train.batch_size == 16 and config.stage_order == ("rough", "parts")
    assert build.stage_config(config, "parts").learning_rates == {"parts": 0.5}
    with pytest.raises(KeyError, match="no field 'batch_sise'"):
        load_config(path, ["--config.train.batch_sise=16"])


def test_an_unbuilt_real_dataset_says_how_to_build_it(tmp_path):
    config = base_config()
    config.data.name, config.data.data_dir = "helen", str(tmp_path)
    with pytest.raises(FileNotFoundError, match="stn-icnn data build helen --manual_dir DIR"):
        load_sources(config)


def test_the_synthetic_set_is_built_on_first_use(tmp_path):
    config = base_config()
    config.data.builder_config, config.data.data_dir = "tiny", str(tmp_path)
    sources = load_sources(config, show_progress=False)
    assert {k: len(v) for k, v in sources.items()} == {"train": 16, "validation": 4, "test": 4}
    assert (tmp_path / "synthetic_faces" / "tiny").is_dir()
    again = load_sources(config, show_progress=False)  # built once: read, not rebuilt
    np.testing.assert_array_equal(again["test"][3]["image"], sources["test"][3]["image"])


def test_a_stage_checkpoint_gives_the_networks_its_stage_runs(tmp_path):
    """Restoring a stage's checkpoint takes the networks that stage runs and keeps the
    others: a run whose localiser has another shape (coordinate channels) can start from
    another run's rough stage, and evaluation reads that run with zeros in the networks
    no stage has run yet."""
    import shutil

    from stn_icnn_jax import evaluation
    from stn_icnn_jax.train import distributed, run
    from training_helpers import tiny_training_config, write_fake_run

    plain = tiny_training_config(("rough", "localizer"), epochs=1)
    after = write_fake_run(plain, tmp_path / "plain", stages=("rough",), noise=0.1)
    coords = tiny_training_config(("rough", "localizer"), epochs=1)
    coords.model.localizer_coord_channels = True
    checkpoints.check_or_write_config(tmp_path / "coords", coords.to_json(sort_keys=True))
    shutil.copytree(tmp_path / "plain" / "rough", tmp_path / "coords" / "rough")

    mesh = distributed.make_mesh()
    sources = load_sources(coords, show_progress=False)
    _, initial = run.initial_variables(coords, sources, mesh)
    restored, record = run.restore_stage("rough", coords, initial, sources, tmp_path / "coords", mesh)
    assert record["finished"]
    same = jax.tree.map(np.array_equal, restored["params"]["rough"], after["rough"]["params"]["rough"])
    assert all(jax.tree.leaves(same))  # K: the other run's, moved by the noise
    for kind in ("params", "batch_stats"):
        for net in ("localizer", "parts"):  # kept as they were, the coordinate channels included
            same = jax.tree.map(np.array_equal, restored[kind][net], initial[kind][net])
            assert all(jax.tree.leaves(same)), (kind, net)
    assert restored["params"]["localizer"]["features"]["conv_0"]["kernel"].shape[2] == 11

    trained = evaluation.load_run(tmp_path / "coords", mesh)
    variables = trained.variables["rough"]
    same = jax.tree.map(np.array_equal, variables["params"]["rough"], after["rough"]["params"]["rough"])
    assert all(jax.tree.leaves(same))
    assert variables["params"]["localizer"]["features"]["conv_0"]["kernel"].shape[2] == 11
    assert not any(np.any(np.asarray(x)) for x in jax.tree.leaves(variables["params"]["localizer"]))
    assert trained.records["localizer"] is None


def test_the_parts_stage_trains_on_jittered_centres(tmp_path, monkeypatch):
    """The training loop builds the parts stage's loader with its crop_jitter in pixels
    (the loader is stopped at its creation: no step runs)."""
    from stn_icnn_jax.data import input_pipeline
    from stn_icnn_jax.train import run
    from training_helpers import tiny_training_config

    class Built(Exception):
        pass

    def stop(source, features, config, *args, **kwargs):
        raise Built(config)

    config = tiny_training_config(("parts",), epochs=1)
    config.stages.parts.crop_jitter = 0.2
    monkeypatch.setattr(input_pipeline, "make_loader", stop)
    with pytest.raises(Built) as built:
        run.run(config, tmp_path / "work", show_progress=False)
    inputs = built.value.args[0]
    assert inputs.augment is not None or inputs.shuffle  # the training loader
    assert inputs.center_jitter == pytest.approx(0.2 * config.model.crop_size)

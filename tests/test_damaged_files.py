"""Every file the project reads back, damaged or of the wrong kind, gives one clear line naming it (no traceback)."""

import json
import os
import subprocess
import sys

import pytest

from gd_bottleneck.errors import DamagedFile, UserError
from gd_bottleneck.training import checkpoints, files
from gd_bottleneck.training.run_config import RunConfig
from trainers import evaluate
from tuning import frontier, identity

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not valid JSON"), ("[1, 2]", "holds a JSON list, not an object"),
    ('{"other": 1}', "lacks steps"), (b"\xff\xfe\x00", "is not valid JSON")])
def test_read_json_names_the_file_and_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "results.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DamagedFile, match=message) as raised:
        files.read_json(str(path), required=("steps",), advice="Do this.")
    assert str(raised.value).startswith(str(path)) and str(raised.value).endswith("Do this.")
    assert "\n" not in str(raised.value) and isinstance(raised.value, UserError)


def test_a_folder_where_a_json_file_should_be_is_named_as_such(tmp_path):
    (tmp_path / "run_config.json").mkdir()
    with pytest.raises(DamagedFile, match="is a folder, not a JSON file"):
        files.read_json(str(tmp_path / "run_config.json"))


@pytest.mark.parametrize("change, message", [
    ({"nonsense_field": 1}, "Unknown RunConfig fields"), ({"batch_size": "many"}, "batch_size"),
    ({"image_size": 7}, "image_size")])
def test_a_hand_edited_run_config_is_damage_with_the_reason_not_a_traceback(tmp_path, change, message):
    path = tmp_path / "run_config.json"
    path.write_text(json.dumps({**RunConfig(model_dir=str(tmp_path), dropout_rate=0.1).to_dict(), **change}))
    with pytest.raises(DamagedFile, match=f"does not hold a run's settings .*{message}"):
        checkpoints.run_config_of(str(path))
    with pytest.raises(DamagedFile, match="run_config.json"):
        checkpoints.load_trained_model(str(tmp_path))  # what evaluate, sample and export read first


def test_damaged_bounds_and_search_records_are_named(tmp_path):
    (tmp_path / "bounds.json").write_text('{"entries": {"a": 1}}')
    with pytest.raises(DamagedFile, match="bounds.json: its entries are not a list. Move it away"):
        evaluate.kept_entries(str(tmp_path))
    (tmp_path / "bounds.json").write_text("{}")
    with pytest.raises(DamagedFile, match="bounds.json lacks entries"):
        evaluate.kept_entries(str(tmp_path))
    (tmp_path / identity.IDENTITY_FILE).write_text("[]")
    with pytest.raises(DamagedFile, match="gd_search.json holds a JSON list.*--overwrite"):
        identity.check(str(tmp_path), {"tuner": "grid"})


def test_wall_time_bookkeeping_never_stops_a_run(tmp_path):
    (tmp_path / checkpoints.WALL_TIME_FILE).write_text("{damaged")
    assert checkpoints.recorded_wall_time(str(tmp_path), "ckpt-4") == 0.0
    checkpoints.record_wall_time(str(tmp_path), "ckpt-5", 12.5)  # rewritten at the next checkpoint
    assert checkpoints.recorded_wall_time(str(tmp_path), "ckpt-5") == 12.5


def test_frontier_inputs_of_the_wrong_kind_are_named(tmp_path):
    runs_csv = tmp_path / "runs.csv"
    runs_csv.write_text("strength,seed,steps,elbo_bpd\n0.1,0,10,5.0\n")
    with pytest.raises(DamagedFile, match="runs.csv is not a runs.csv of tuning.frontier .no column kl_bpd"):
        frontier.load_runs_csv(str(runs_csv))
    with pytest.raises(DamagedFile, match="is a folder: --from_runs_csv takes a runs.csv file"):
        frontier.load_runs_csv(str(tmp_path))
    with pytest.raises(DamagedFile, match="runs.csv is not valid JSON.*or a runs.csv with --from_runs_csv"):
        frontier.load_runs([str(runs_csv)])  # a CSV given where run folders belong
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text('{"steps": 3}')
    with pytest.raises(DamagedFile, match="results.json lacks config"):
        frontier.load_runs([str(tmp_path / "run")])


def test_the_frontier_cli_answers_a_csv_given_as_a_run_folder_with_one_line(tmp_path):
    runs_csv = tmp_path / "runs.csv"
    runs_csv.write_text("strength,seed\n")
    done = subprocess.run([sys.executable, "-m", "tuning.frontier", str(runs_csv)], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": REPO})
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.strip().splitlines() == [done.stderr.strip().splitlines()[-1]]
    assert done.stderr.startswith(f"ERROR: {runs_csv} is not valid JSON")


@pytest.mark.parametrize("damage", ["truncate", "overwrite", "delete"])
def test_a_damaged_dataset_shard_is_named_with_the_fix(shapes_data_dir, tmp_path, damage):
    import glob
    import shutil

    from gd_bottleneck import data
    from gd_bottleneck.errors import DatasetUnavailable

    copy = tmp_path / "tfds"
    shutil.copytree(shapes_data_dir, copy)
    (shard,) = glob.glob(str(copy / "**" / "*-train.tfrecord-*"), recursive=True)
    if damage == "truncate":
        with open(shard, "r+b") as stream:
            stream.truncate(os.path.getsize(shard) // 2)
    elif damage == "overwrite":
        with open(shard, "r+b") as stream:
            stream.seek(100)
            stream.write(b"\x00" * 200)
    else:
        os.remove(shard)
    with pytest.raises(DatasetUnavailable, match=r"the 'train' split of .* cannot be read .*Delete .* to build it"):
        data.load_images("shapes_tiny", "train", 8, data_dir=str(copy))

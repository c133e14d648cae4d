"""A session-wide tfds data dir holding the embedded dataset's small 8x8 config, shapes_tiny (built once, ~1 s)."""

import pytest

from gd_bottleneck import data


@pytest.fixture(scope="session")
def shapes_data_dir(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("tfds"))
    data.prepare("shapes_tiny", 8, data_dir=folder)
    return folder

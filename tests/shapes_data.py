"""A session-wide tfds data dir holding the embedded dataset's 8x8 config (built once, ~1 s)."""

import pytest

from gd_bottleneck import data


@pytest.fixture(scope="session")
def shapes_data_dir(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("tfds"))
    data.prepare("shapes", 8, data_dir=folder)
    return folder

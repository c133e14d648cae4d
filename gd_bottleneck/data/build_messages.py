"""One line of our own when a locally generated dataset is built, instead of tfds's download banner.

tfds announces every build with "Downloading and preparing dataset Unknown size (download: Unknown size, ...)",
which tells a user of a dataset that downloads nothing the wrong thing. The builders here (gd_shapes, gd_photos)
replace it with what is being built, how many images, where, and about how long; an already-built dataset prints
nothing (``data.prepare`` returns before building). tfds's progress bars stay.
"""

import time


class LocalBuildMessages:
    """A mixin for tfds builders that generate their data locally; a builder provides :meth:`build_summary`
    (what it builds: counts and sources) and ``BUILD_SECONDS`` (a rough duration on 2 CPU cores, by config)."""

    BUILD_SECONDS = {}

    def build_summary(self):
        raise NotImplementedError

    def _log_download_bytes(self):  # tfds 4.9's hook, called right before a build starts
        self._build_began = time.time()
        seconds = self.BUILD_SECONDS.get(self.builder_config.name)
        duration = f", about {seconds} s" if seconds else ""
        print(f"Building {self.name}/{self.builder_config.name}: {self.build_summary()}, no download, into "
              f"{self.data_dir}{duration}.", flush=True)

    def _log_download_done(self):  # the build's end: nothing more to say
        pass

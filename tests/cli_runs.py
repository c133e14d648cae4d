"""Running the command lines in subprocesses for tests: the trainer's tiny-run command and a process handle."""

import os
import subprocess
import sys
import tempfile

from tests.tiny_models import RUN_FLAGS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def trainer_command(model_dir, data_dir, *extra):
    return [sys.executable, "-m", "trainers.cifar", f"--model_dir={model_dir}", f"--data_dir={data_dir}",
            "--dataset=shapes_tiny", "--image_size=8", "--dropout_rate=0.1", "--batch_size=8", "--epochs=2",
            "--steps_per_epoch=20", "--checkpoint_every=10", "--keep_checkpoints=20", "--log_every=10",
            "--image_summaries=0", "--progress=lines", "--learning_rate=1e-3", "--deterministic", "--noexport",
            *RUN_FLAGS, *extra]


def environment(**extra):
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO, **extra}


class Run:
    """A trainer subprocess whose output goes to files (pipes could fill up and block it while it is polled)."""

    def __init__(self, model_dir, data_dir, *extra, env=None, command=None):
        self.model_dir = str(model_dir)
        logs = tempfile.mkdtemp(dir=os.path.dirname(self.model_dir), prefix=os.path.basename(self.model_dir) + ".log")
        self.out_path, self.err_path = os.path.join(logs, "out"), os.path.join(logs, "err")
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.process = subprocess.Popen(command or trainer_command(self.model_dir, data_dir, *extra), cwd=REPO,
                                            env=env or environment(), stdout=out, stderr=err)

    @classmethod
    def tool(cls, module, model_dir, *args):
        """``python -m module --model_dir=... *args`` (the export and sample CLIs)."""
        return cls(model_dir, None, command=[sys.executable, "-m", module, f"--model_dir={model_dir}", *args])

    def checkpoint_reached(self, step):
        index = os.path.join(self.model_dir, "checkpoints", "checkpoint")
        return os.path.exists(index) and f"ckpt-{step}\"" in open(index).read()

    def wait(self):
        self.process.wait(timeout=600)
        self.stdout, self.stderr = open(self.out_path).read(), open(self.err_path).read()
        return self

    def assert_succeeded(self):
        assert self.wait().process.returncode == 0, self.stderr[-3000:]
        return self

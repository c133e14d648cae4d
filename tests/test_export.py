"""SavedModel export: version layout, atomic publication, no overwrite, signatures, a fresh process, bad requests."""

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from benchmarks.sampling import context_dependent_weights
from gd_bottleneck import HybridVAE, errors, export, sampling
from gd_bottleneck.training import files
from tests.faults import file_size_limit
from tests.tiny_models import TINY

SEED = [3, 4]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A TINY model with context-dependent weights, exported once: ``(model, version path)``."""
    model = context_dependent_weights(HybridVAE(TINY, bottleneck="gaussian_dropout", dropout_rate=0.2, seed=5))
    return model, export.export_saved_model(model, str(tmp_path_factory.mktemp("saved") / "tiny"))


@pytest.fixture(scope="module")
def library_samples(exported):
    """What the library's cached sampler draws for 3 images with SEED (uint8 numpy)."""
    model, seed = exported[0], tf.constant(SEED)
    return sampling.cached_samples(model, sampling.prior_latents(model, seed, 3), seed).numpy()


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(exported[1])  # kept alive for the module (its functions need the object)


class FakeArchive:
    """Stands in for keras.export.ExportArchive: the versioning logic does not depend on the archive's content."""

    fail = False
    seen_while_writing = None

    def track(self, model):
        pass

    def add_endpoint(self, name, function):
        pass

    def write_out(self, path, verbose=False):
        with open(os.path.join(path, "saved_model.pb"), "w") as file:
            file.write("graph")
        base = os.path.dirname(path)
        FakeArchive.seen_while_writing = export.existing_versions(base)
        if FakeArchive.fail:
            raise OSError("disk full")


@pytest.fixture
def fake_archive(monkeypatch):
    monkeypatch.setattr(keras.export, "ExportArchive", FakeArchive)
    monkeypatch.setattr(export, "_endpoints", lambda model: {})
    FakeArchive.fail = False
    return FakeArchive


def test_versions_count_up_and_existing_ones_are_never_overwritten(tmp_path, fake_archive):
    base = tmp_path / "model"
    (base / "1").mkdir(parents=True)
    (base / "1" / "marker").write_text("mine")
    (base / "notes").mkdir()  # not a version
    assert export.export_saved_model(None, str(base)) == str(base / "2")
    assert export.export_saved_model(None, str(base)) == str(base / "3")
    assert (base / "1" / "marker").read_text() == "mine" and not (base / "1" / "saved_model.pb").exists()
    assert sorted(os.listdir(base)) == ["1", "2", "3", "notes"]  # no staging or claim files left behind
    assert export.existing_versions(str(base)) == [1, 2, 3]


def test_a_version_appears_only_when_complete_and_a_failed_export_leaves_nothing(tmp_path, fake_archive):
    base = tmp_path / "model"
    path = export.export_saved_model(None, str(base))
    assert fake_archive.seen_while_writing == []  # while its files were written, version 1 did not exist yet
    assert os.path.exists(os.path.join(path, "saved_model.pb"))
    fake_archive.fail = True
    with pytest.raises(OSError, match="disk full"):
        export.export_saved_model(None, str(base))
    assert sorted(os.listdir(base)) == ["1"]


def test_a_model_folder_belongs_to_one_run(tmp_path, fake_archive):
    """Two runs whose folders end in the same name get different default model folders; exporting one run into a
    folder holding another run's versions is refused, naming both, unless forced; each version says who wrote it."""
    from gd_bottleneck.training.run_config import default_export_base
    assert default_export_base("/x/a/demo") != default_export_base("/x/b/demo")
    assert default_export_base("/x/a/demo").startswith("saved_models/demo-")
    assert default_export_base("runs/demo") == default_export_base(os.path.abspath("runs/demo"))  # stable
    base = str(tmp_path / "model")
    first, second = {"model_dir": "/x/a/demo", "config": {}}, {"model_dir": "/x/b/demo", "config": {}}
    version = export.export_saved_model(None, base, first)
    with open(os.path.join(version, export.RUN_FILE)) as stream:
        assert json.load(stream)["model_dir"] == "/x/a/demo"
    assert export.export_saved_model(None, base, first).endswith("2")  # the same run: its next version
    with pytest.raises(errors.ExportError, match=r"holds versions \[1, 2\] of /x/a/demo; adding /x/b/demo's"):
        export.export_saved_model(None, base, second)
    assert export.existing_versions(base) == [1, 2]  # nothing written
    assert export.export_saved_model(None, base, second, force=True).endswith("3")
    assert export.version_runs(base) == {1: "/x/a/demo", 2: "/x/a/demo", 3: "/x/b/demo"}
    os.remove(os.path.join(base, "1", export.RUN_FILE))  # a version that does not say who wrote it
    with pytest.raises(errors.ExportError, match="an unknown run"):
        export.check_model_folder(base, first)


def test_signatures_have_the_documented_names_dtypes_and_shapes(exported):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run([cli, "show", "--dir", exported[1], "--all"], capture_output=True, text=True, check=True,
                           env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}).stdout
    signatures = {}
    for block in shown.split("signature_def['")[1:]:
        signatures[block.split("']")[0]] = " ".join(block.split())
    assert set(signatures) >= {"sample", "serving_default", "reconstruct", "encode", "elbo"}
    image = "dtype: DT_UINT8 shape: (-1, 8, 8, 3)"
    expected = {
        "sample": ["inputs['num_samples'] tensor_info: dtype: DT_INT32 shape: ()",
                   "inputs['seed'] tensor_info: dtype: DT_INT32 shape: (2)", f"outputs['images'] tensor_info: {image}"],
        "reconstruct": [f"inputs['images'] tensor_info: {image}", f"outputs['images'] tensor_info: {image}"],
        "encode": ["outputs['latent_mean'] tensor_info: dtype: DT_FLOAT shape: (-1, 4, 4, 4)",
                   "outputs['latent_stddev'] tensor_info: dtype: DT_FLOAT shape: (-1, 4, 4, 4)"],
        "elbo": ["outputs['elbo_bpd'] tensor_info: dtype: DT_FLOAT shape: (-1)",
                 "outputs['kl_bpd'] tensor_info: dtype: DT_FLOAT shape: (-1)"],
    }
    expected["serving_default"] = expected["sample"]
    for name, parts in expected.items():
        for part in parts:
            assert part in signatures[name], (name, part, signatures[name])


def test_signatures_give_the_library_results(exported, loaded, library_samples):
    model, _ = exported
    seed = tf.constant(SEED)
    samples = loaded.signatures["sample"](num_samples=tf.constant(3), seed=seed)["images"]
    np.testing.assert_array_equal(samples, library_samples)
    again = loaded.signatures["sample"](num_samples=tf.constant(3), seed=seed)["images"]
    other = loaded.signatures["sample"](num_samples=tf.constant(3), seed=tf.constant([3, 5]))["images"]
    np.testing.assert_array_equal(again, samples)  # a seed determines its images
    assert np.mean(other.numpy() != samples.numpy()) > 0.5  # another seed, other images
    assert np.mean(samples.numpy()[0] != samples.numpy()[1]) > 0.5  # the images of a request get their own noise
    reconstructions = loaded.signatures["reconstruct"](images=samples, seed=seed)["images"]
    np.testing.assert_array_equal(reconstructions, sampling.reconstructions(model, samples, seed))
    mean, stddev = model.encode(samples)
    encoded = loaded.signatures["encode"](images=samples)
    np.testing.assert_allclose(encoded["latent_mean"], mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(encoded["latent_stddev"], stddev, rtol=1e-6, atol=1e-6)
    figures = loaded.signatures["elbo"](images=samples)
    np.testing.assert_allclose(figures["elbo_bpd"], model.elbo(samples)["elbo_bpd"], rtol=1e-6)


@pytest.mark.parametrize("count", [0, -1, export.MAX_IMAGES_PER_REQUEST + 1])
def test_bad_sample_counts_are_rejected_with_a_clear_message(loaded, count):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`num_samples` must be in \[1, 256\]"):
        loaded.signatures["sample"](num_samples=tf.constant(count), seed=tf.constant(SEED))


def test_bad_images_and_seeds_are_rejected(loaded):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"images.shape\[0\]` must be in \[1, 256\]"):
        loaded.signatures["reconstruct"](images=tf.zeros([0, 8, 8, 3], tf.uint8), seed=tf.constant(SEED))
    for name in ("elbo", "encode"):  # a wrong size must not reach the network (it used to fail deep inside oneDNN)
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"`images` must have shape \[n, 8, 8, 3\]"):
            loaded.signatures[name](images=tf.zeros([1, 16, 16, 3], tf.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"images.shape\[0\]` must be in \[1, 256\]"):
        loaded.signatures["elbo"](images=tf.zeros([0, 8, 8, 3], tf.uint8))
    with pytest.raises((ValueError, TypeError, tf.errors.InvalidArgumentError)):
        loaded.signatures["elbo"](images=tf.zeros([1, 8, 8, 3], tf.float32))
    with pytest.raises((ValueError, TypeError, tf.errors.InvalidArgumentError)):
        loaded.signatures["sample"](num_samples=tf.constant(1), seed=tf.constant([1, 2, 3]))


def test_the_export_runs_in_a_process_that_cannot_import_the_project(exported, library_samples, tmp_path):
    path = exported[1]
    np.save(tmp_path / "expected.npy", library_samples[:2])  # 2 of the 3: image b depends only on (seed, b)
    script = textwrap.dedent(f"""
        import sys
        sys.modules["gd_bottleneck"] = None  # any import of the project now fails
        import numpy as np, tensorflow as tf
        loaded = tf.saved_model.load({path!r})
        images = loaded.signatures["serving_default"](num_samples=tf.constant(2), seed=tf.constant({SEED}))["images"]
        assert np.array_equal(images.numpy(), np.load({str(tmp_path / "expected.npy")!r})), "different samples"
        print(loaded.signatures["elbo"](images=images)["elbo_bpd"].shape)
    """)
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    processes = [subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True),
                 subprocess.Popen([cli, "run", "--dir", path, "--tag_set", "serve", "--signature_def", "sample",
                                   "--input_exprs", "num_samples=0;seed=[1,2]"], cwd=tmp_path, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    (fresh_out, fresh_err), (cli_out, cli_err) = [process.communicate(timeout=300) for process in processes]
    assert processes[0].returncode == 0, fresh_err[-3000:]
    assert fresh_out.strip().endswith("(2,)")
    assert processes[1].returncode != 0 and "`num_samples` must be in [1, 256]" in cli_err


def compile_c_consumer(folder):
    """Builds examples/serving_from_c/consume.c against the installed tensorflow wheel's C API; the binary's path."""
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler on this machine (set CC): the C consumer cannot be built")
    wheel = os.path.dirname(tf.__file__)
    binary = os.path.join(folder, "consume")
    source = os.path.join(REPO, "examples", "serving_from_c", "consume.c")
    built = subprocess.run([compiler, "-O1", "-o", binary, source,
                            f"-I{os.path.join(wheel, 'include')}", f"-L{wheel}", "-l:libtensorflow_cc.so.2",
                            "-l:libtensorflow_framework.so.2", f"-Wl,-rpath,{wheel}"],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    return binary


def test_a_c_program_loads_the_version_as_a_server_would_and_gets_the_librarys_answers(exported, loaded,
                                                                                         library_samples, tmp_path):
    binary = compile_c_consumer(str(tmp_path))
    prefix = str(tmp_path / "out")
    done = subprocess.run([binary, exported[1], "3", str(SEED[0]), str(SEED[1]), prefix], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-3000:]
    size = TINY.image_size
    assert done.stdout.split() == ["images", "3", str(size), str(size), "3"]
    images = np.fromfile(prefix + ".sample.u8", np.uint8).reshape(3, size, size, 3)
    np.testing.assert_array_equal(images, library_samples)  # bit for bit: the same seed, the same draws
    figures = loaded.signatures["elbo"](images=tf.constant(images))
    np.testing.assert_allclose(np.fromfile(prefix + ".elbo.f32", np.float32), figures["elbo_bpd"].numpy(), rtol=1e-6)
    np.testing.assert_allclose(np.fromfile(prefix + ".kl.f32", np.float32), figures["kl_bpd"].numpy(), rtol=1e-6)
    # A request the signature refuses fails in C too, with the library's message (no silent wrong answer).
    refused = subprocess.run([binary, exported[1], "0", "1", "2", prefix], capture_output=True, text=True,
                             timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert refused.returncode == 1 and "`num_samples` must be in [1, 256]" in refused.stderr, refused.stderr[-2000:]


# --- the validating clients: gd_bottleneck.client and python -m trainers.request ---

@pytest.fixture(scope="module")
def client(exported):
    """The Python client on the exported version, loaded once (a SavedModel load costs seconds; the refusals below
    happen before any signature runs, so they cannot disturb each other)."""
    from gd_bottleneck.client import ExportedModel
    return ExportedModel(exported[1])

@pytest.mark.parametrize("call, message", [
    (lambda m: m.reconstruct(np.full([1, 8, 8, 3], 300), [0, 0]), r"\[0, 255\]. Received a value 300"),
    (lambda m: m.elbo(np.full([1, 8, 8, 3], 100.5)), r"integer pixel values in \[0, 255\]. Received a value 100.5"),
    (lambda m: m.elbo(np.full([1, 8, 8, 3], np.nan)), "must not hold NaN"),
    (lambda m: m.encode(np.full([1, 8, 8, 3], -1)), r"Received a value -1"),
    (lambda m: m.encode([[[[0, 0, 0]] * 8] * 8] * 257), r"images.shape\[0\]` must be in \[1, 256\]"),
    (lambda m: m.elbo(np.zeros([1, 16, 16, 3])), r"shape \[n, 8, 8, 3\]"),
    (lambda m: m.sample(2.5, [0, 0]), r"`num_samples` must be an integer in \[1, 256\]. Received: num_samples=2.5"),
    (lambda m: m.sample(np.int64(2**32 + 3), [0, 0]), r"`num_samples` must be in \[1, 256\]"),
    (lambda m: m.sample(True, [0, 0]), "`num_samples` must be an integer"),
    (lambda m: m.sample(1, np.array([2**31, 0], np.int64)), r"`seed` must be two integers in .* \(int32\)"),
    (lambda m: m.sample(1, [1.0, 2.0]), "`seed` must be two integers"),
    (lambda m: m.sample(1, [1, 2, 3]), "`seed` must be two integers"),
])
def test_the_python_client_refuses_values_a_cast_would_change(client, call, message):
    with pytest.raises(ValueError, match=message):
        call(client)


def test_the_python_client_gives_the_signatures_answers_for_numpy_and_lists(client, loaded, library_samples):
    from gd_bottleneck.client import rest_request
    model = client
    assert model.image_size == 8
    samples = model.sample(np.int64(3), np.array(SEED, np.int64))  # int64 values in range are fine
    np.testing.assert_array_equal(samples, library_samples)
    as_floats = samples.astype(np.float64)  # integral floats are pixel values too
    np.testing.assert_array_equal(model.elbo(as_floats.tolist())["elbo_bpd"],
                                  loaded.signatures["elbo"](images=tf.constant(samples))["elbo_bpd"].numpy())
    body = rest_request("reconstruct", 8, images=samples[:1], seed=SEED)
    assert body["signature_name"] == "reconstruct" and body["inputs"]["seed"] == SEED
    assert np.array_equal(np.array(body["inputs"]["images"]), samples[:1])
    with pytest.raises(ValueError, match="`image_size` is required"):
        rest_request("elbo", images=samples)


def test_the_request_cli_validates_before_calling_and_writes_images(exported, tmp_path):
    np.save(tmp_path / "bad.npy", np.full([1, 8, 8, 3], 300))
    base = [sys.executable, "-m", "trainers.request", f"--model={exported[1]}"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO}
    (tmp_path / "text.npy").write_text("not an array")
    incomplete = tmp_path / "incomplete" / "1"
    shutil.copytree(exported[1], incomplete)
    shutil.rmtree(incomplete / "variables")  # a version copied half-way
    commands = {"bad_images": [*base, "--signature=elbo", f"--images={tmp_path / 'bad.npy'}"],
                "bad_count": [*base, "--num_samples=2.5"],
                "not_npy": [*base, "--signature=elbo", f"--images={tmp_path / 'text.npy'}"],
                "incomplete": [sys.executable, "-m", "trainers.request", f"--model={incomplete}"],
                "not_a_version": [sys.executable, "-m", "trainers.request", f"--model={tmp_path}"],
                "good": [*base, "--num_samples=3", "--seed=3,4", f"--out={tmp_path / 'out.png'}"]}
    processes = {name: subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True) for name, command in commands.items()}
    results = {name: (process.communicate(timeout=300), process.returncode) for name, process in processes.items()}
    for name, message in (("bad_images", "Flag `--images` must hold integer pixel values in [0, 255]"),
                          ("bad_count", "Flag --num_samples must be an integer. Received: '2.5'")):
        (_, err), status = results[name]
        assert status == 1 and message in err and "Traceback" not in err, (name, err[-2000:])
    for name, message in (("not_npy", "text.npy is not a .npy file of uint8 images"),
                          ("incomplete", "1 is an incomplete or damaged SavedModel version"),
                          ("not_a_version", "is not a SavedModel version folder (no saved_model.pb)")):
        (_, err), status = results[name]
        assert status == 2 and err.startswith("ERROR: ") and len(err.strip().splitlines()) == 1, (name, err[-2000:])
        assert message in err, (name, err[-2000:])
    (out, err), status = results["good"]
    assert status == 0 and "Wrote 3 images" in out, err[-2000:]
    assert tf.io.decode_png(tf.io.read_file(str(tmp_path / "out.png"))).shape == (8, 64, 3)  # 1 row of 8 cells


def test_a_full_disk_during_an_export_is_a_clear_error_and_keeps_earlier_versions(exported, loaded):
    model, first = exported
    base = os.path.dirname(first)
    mask = files.current_umask()
    assert os.stat(first).st_mode & 0o777 == 0o777 & ~mask  # not mkdtemp's 0700: TF Serving may be another user
    assert os.stat(os.path.join(first, "saved_model.pb")).st_mode & 0o777 == 0o666 & ~mask

    finished = subprocess.Popen(["true"])
    finished.wait()  # its pid is free: its staging folder is abandoned
    host = socket.gethostname()
    abandoned = os.path.join(base, f".incomplete-{host}-{finished.pid}-0000dead")
    live = os.path.join(base, f".incomplete-{host}-{os.getpid()}-0000beef")  # "another export" of a live process
    for folder in (abandoned, live):
        os.makedirs(os.path.join(folder, "variables"))
    untouched = r"disk full.*Existing versions \[1\] are untouched"
    with file_size_limit(4096), pytest.raises(errors.ExportError, match=untouched):
        export.export_saved_model(model, base)
    assert export.existing_versions(base) == [1]
    assert sorted(name for name in os.listdir(base) if name.startswith(".")) == [os.path.basename(live)]
    assert loaded.signatures["sample"](num_samples=tf.constant(1), seed=tf.constant([0, 0]))["images"].shape[0] == 1


def test_the_warmup_file_holds_a_sample_request_that_the_version_answers(exported, loaded):
    from tensorflow_serving.apis import prediction_log_pb2
    records = list(tf.data.TFRecordDataset(os.path.join(exported[1], export.WARMUP_FILE)).as_numpy_iterator())
    assert len(records) == 1
    request = prediction_log_pb2.PredictionLog.FromString(records[0]).predict_log.request
    assert request.model_spec.signature_name == "sample"
    inputs = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
    assert inputs["num_samples"].dtype == tf.int32 and inputs["seed"].dtype == tf.int32  # the signature's dtypes
    images = loaded.signatures["sample"](**inputs)["images"]  # what TF Serving replays when it loads the version
    assert images.shape == (1, 8, 8, 3)


@pytest.mark.skipif(shutil.which("tensorflow_model_server") is None,
                    reason="TF Serving's server binary is not installable from this machine's registries")
def test_tensorflow_serving_loads_the_version_and_answers_rest_requests(exported, library_samples, tmp_path):
    import json
    import urllib.request

    from gd_bottleneck.client import rest_request
    base = os.path.dirname(exported[1])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(["tensorflow_model_server", f"--rest_api_port={port}", "--port=0", "--model_name=tiny",
                               f"--model_base_path={base}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/v1/models/tiny:predict"
        body = json.dumps(rest_request("sample", num_samples=3, seed=SEED)).encode()
        for _ in range(120):  # the server loads the version (and replays the warm-up request) first
            try:
                with urllib.request.urlopen(urllib.request.Request(url, body), timeout=30) as response:
                    outputs = json.loads(response.read())["outputs"]
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("TF Serving did not answer within 60 s")
        np.testing.assert_array_equal(np.array(outputs, np.uint8), library_samples)
    finally:
        server.terminate()
        server.wait(timeout=30)

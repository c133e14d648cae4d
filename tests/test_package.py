"""The package's public API: every listed name resolves, on first use; a REST client imports without TensorFlow."""

import subprocess
import sys

import gd_bottleneck
from tests.cli_runs import REPO, environment


def test_every_public_name_resolves_to_its_modules_object():
    from gd_bottleneck import bottlenecks, client, evaluation, sampling, training
    assert gd_bottleneck.IdentityBottleneck is bottlenecks.IdentityBottleneck
    assert gd_bottleneck.LikelihoodBounds is evaluation.LikelihoodBounds
    assert gd_bottleneck.cached_samples is sampling.cached_samples
    assert gd_bottleneck.RunConfig is training.RunConfig and gd_bottleneck.ExportedModel is client.ExportedModel
    for name in gd_bottleneck.__all__:
        assert getattr(gd_bottleneck, name) is not None
    assert set(gd_bottleneck.__all__) <= set(dir(gd_bottleneck))


def test_an_unknown_name_is_an_attribute_error():
    try:
        gd_bottleneck.NoSuchThing  # noqa: B018
    except AttributeError as error:
        assert "no attribute 'NoSuchThing'" in str(error)
    else:
        raise AssertionError("expected an AttributeError")


def test_the_rest_client_imports_without_tensorflow_or_keras():
    code = ("import sys, gd_bottleneck.client as c; body = c.rest_request('sample', num_samples=2, seed=[1, 2]); "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules), body['signature_name'])")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=environment(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["[]", "sample"]

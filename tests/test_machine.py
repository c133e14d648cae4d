"""The machine record kept with every study run: parsed from /proc/cpuinfo's format, JSON-able."""

import json

from gd_bottleneck.training import machine

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480C, rev 2
flags\t\t: fpu sse2 avx2 fma avx512f avx512bw amx_tile amx_bf16

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480C, rev 2
flags\t\t: fpu sse2 avx2 fma avx512f avx512bw amx_tile amx_bf16
"""


def test_cpu_model_and_flags_are_read_from_cpuinfo(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    assert machine.cpu_model(str(path)) == "Intel(R) Xeon(R) Platinum 8480C, rev 2"
    assert machine.cpu_vector_flags(str(path)) == ["avx2", "avx512f", "amx_tile"]  # in VECTOR_FLAGS' order


def test_a_missing_cpuinfo_falls_back_instead_of_failing(tmp_path):
    assert isinstance(machine.cpu_model(str(tmp_path / "absent")), str)
    assert machine.cpu_vector_flags(str(tmp_path / "absent")) == []


def test_package_versions_name_missing_packages_as_none():
    versions = machine.package_versions(("numpy", "no-such-distribution-gd"))
    assert versions["no-such-distribution-gd"] is None
    import numpy
    assert versions["numpy"] == numpy.__version__


def test_describe_is_json_round_trippable():
    record = machine.describe()
    assert json.loads(json.dumps(record)) == record
    assert 1 <= record["usable_cores"] <= record["cores"]
    assert set(record["packages"]) == set(machine.PACKAGES)

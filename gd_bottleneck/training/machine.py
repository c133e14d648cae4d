"""What machine and software a measurement ran on, for the records that keep wall times and bounds.

A wall time means little without the CPU that made it (timings here differ up to 2x between the AVX2, AVX-512 and
AMX machines a project session may get), and a bound can move in its last digits between library versions, so
every kept run records both.
"""

import importlib.metadata
import os
import platform

VECTOR_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile")  # the ones oneDNN's kernels choose between
PACKAGES = ("tensorflow", "keras", "tensorflow-probability", "tensorflow-datasets", "numpy")


def _cpuinfo_field(key, cpuinfo):
    """The value of the first ``key : value`` line of ``cpuinfo`` (the first processor's), or None off Linux."""
    try:
        with open(cpuinfo) as stream:
            for line in stream:
                if line.lower().startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model(cpuinfo="/proc/cpuinfo"):
    """The CPU's model name (what ``lscpu`` prints as "Model name"), or ``platform.processor()`` off Linux."""
    return _cpuinfo_field("model name", cpuinfo) or platform.processor() or "unknown"


def cpu_vector_flags(cpuinfo="/proc/cpuinfo"):
    """The subset of :data:`VECTOR_FLAGS` the CPU has (from its first processor's flags; empty off Linux)."""
    present = set((_cpuinfo_field("flags", cpuinfo) or "").split())
    return [flag for flag in VECTOR_FLAGS if flag in present]


def package_versions(names=PACKAGES):
    """``{distribution: version}`` of the installed ``names``; a missing one maps to None."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def describe():
    """The machine as a JSON-able dict: CPU model, its vector extensions, its cores and those this process may use
    (1 for a pinned worker), Python and the versions of the libraries that compute the figures."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu_model(), "cpu_flags": cpu_vector_flags(), "cores": os.cpu_count(), "usable_cores": cores,
            "python": platform.python_version(), "packages": package_versions()}

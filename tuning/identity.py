"""A search folder belongs to one search: what defines it is written there, and a resume that differs is refused.

``<directory>/<project_name>/gd_search.json`` holds the tuner, its oracle's settings, the objective, the trainer
settings every trial starts from (less those a resumed run may change: where files go, how often, on what hardware)
and the tuned space. Rerunning ``tuning.search`` with the same flags resumes; anything else is refused with one line
naming what differs, because KerasTuner would otherwise reload the old oracle, train nothing new and report the old
trials as the new search's. Growing a grid (more values for the same tuned settings, or a larger ``--max_trials``)
stays allowed: it is the documented way to extend a finished grid.
"""

import dataclasses
import os

from gd_bottleneck.errors import SettingsError
from gd_bottleneck.training import files
from gd_bottleneck.training.run_config import RESUMABLE_CHANGES

IDENTITY_FILE = "gd_search.json"


def search_identity(tuner, oracle, objective, base, tunables):
    """The JSON-ready identity of a search: ``tuner`` (its name), ``oracle`` (dict of its settings, e.g. seed,
    max_epochs), ``objective`` (dict), ``base`` (the trainer settings, as ``run_flags.run_settings``) and
    ``tunables`` (``space.Tunable`` list)."""
    fixed = {name: value for name, value in base.items() if name not in RESUMABLE_CHANGES}
    return {"tuner": tuner, "oracle": oracle, "objective": objective, "base": fixed,
            "tunables": {tunable.name: _plain(dataclasses.asdict(tunable)) for tunable in tunables}}


def _plain(value):
    """``value`` as JSON reads it back (tuples as lists), so that a saved identity compares equal to a new one."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def differences(saved, current):
    """``["what: saved -> current", ...]`` for everything a resume cannot change (a grid may grow)."""
    found = []
    for part in ("tuner", "objective"):
        if saved.get(part) != current[part]:
            found.append(f"{part}: {saved.get(part)!r} -> {current[part]!r}")
    oracle = {**saved.get("oracle", {}), "max_trials": None}, {**current["oracle"], "max_trials": None}
    if oracle[0] != oracle[1]:
        found.append(f"oracle: {saved.get('oracle')!r} -> {current['oracle']!r}")
    base = saved.get("base", {})
    for name in sorted(set(base) | set(current["base"])):
        if base.get(name) != current["base"].get(name):
            found.append(f"{name}: {base.get(name)!r} -> {current['base'].get(name)!r}")
    old, new = saved.get("tunables", {}), current["tunables"]
    grows = current["tuner"] == "grid" and set(old) == set(new) and all(
        set(map(repr, old[name]["values"])) <= set(map(repr, new[name]["values"])) for name in old)
    if old != new and not grows:
        found.append(f"tuned space: {old!r} -> {new!r}")
    return found


def check(folder, identity):
    """Refuses (``SettingsError``) to resume the search in ``folder`` when its recorded identity differs from
    ``identity`` (nothing to compare in a new folder, or one written before identities were recorded)."""
    path = os.path.join(folder, IDENTITY_FILE)
    if os.path.exists(path):
        saved = files.read_json(path, required=("tuner",),
                                advice="Restore it, or start the search over with --overwrite.")
        found = differences(saved, _plain(identity))
        if found:
            raise SettingsError(f"the search in {folder!r} was started with other settings ({'; '.join(found)}). "
                                "Use another --directory or --project_name, or --overwrite to start it over.")


def record(folder, identity):
    """Writes ``identity`` into ``folder`` (atomically): after the tuner has made (or, with overwrite, emptied) it."""
    os.makedirs(folder, exist_ok=True)
    files.write_json_atomically(os.path.join(folder, IDENTITY_FILE), _plain(identity))

"""Atomic writes: a reader (or a crash) never sees a half-written results or config file."""

import json
import os
import tempfile


def write_text_atomically(path, text):
    """Writes ``text`` to ``path`` through a temporary file in the same folder, ``fsync`` and ``os.replace``: on a
    full disk or a crash the old file stays as it was. The file gets the usual umask-based mode (not mkstemp's 0600),
    so other users (a TF Serving process, TensorBoard) can read what they could read before."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~current_umask())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def write_json_atomically(path, values):
    """Writes ``values`` as indented JSON to ``path`` atomically (see :func:`write_text_atomically`)."""
    write_text_atomically(path, json.dumps(values, indent=2, sort_keys=True) + "\n")


def current_umask():
    """The process umask (read by setting it and putting it back: there is no read-only call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


REBUILD = "Restore it from a copy, or move it away and run the command that writes it again."


def read_json(path, required=(), advice=REBUILD):
    """The JSON object in ``path``, with at least the keys ``required``; anything else (not JSON, not an object,
    a folder, missing keys) raises :class:`~gd_bottleneck.errors.DamagedFile`: one line naming the file, what is
    wrong and ``advice``. A missing file raises ``FileNotFoundError`` as usual (callers check for it)."""
    from gd_bottleneck.errors import DamagedFile

    if os.path.isdir(path):
        raise DamagedFile(f"{path} is a folder, not a JSON file. {advice}")
    try:
        with open(path) as stream:
            value = json.load(stream)
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
        raise DamagedFile(f"{path} is not valid JSON ({error}). {advice}") from None
    if not isinstance(value, dict):
        raise DamagedFile(f"{path} holds a JSON {type(value).__name__}, not an object. {advice}")
    missing = [key for key in required if key not in value]
    if missing:
        raise DamagedFile(f"{path} lacks {', '.join(missing)}. {advice}")
    return value

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


def read_json(path):
    with open(path) as stream:
        return json.load(stream)

"""Send one validated request to an exported model version and save or print the answer.

    python -m trainers.request --model=saved_models/demo/1 --signature=sample --num_samples=4 --seed=1,2 --out=s.png
    python -m trainers.request --model=saved_models/demo/1 --signature=elbo --images=batch.npy
    python -m trainers.request --signature=sample --num_samples=4 --seed=1,2 --rest_body   # JSON for TF Serving

Unlike ``saved_model_cli run``, which casts its inputs to the signature's dtypes (300 -> 44, 2.5 -> 2), every input
is checked first (see gd_bottleneck.client) and a bad one is refused with the accepted range. Images come from a
.npy file holding ``[n, H, W, 3]`` integers in [0, 255]; image outputs are written as a PNG grid, other outputs
printed as JSON.
"""

import json

import numpy as np
from absl import app, flags

from gd_bottleneck import cli, client
from gd_bottleneck.errors import DamagedFile
from gd_bottleneck.image_grids import write_png_grid

FLAGS = flags.FLAGS
SIGNATURES = ("sample", "reconstruct", "encode", "elbo")
flags.DEFINE_string("model", None, "An exported version folder, e.g. saved_models/demo/1.")
flags.DEFINE_enum("signature", "sample", list(SIGNATURES), "Which signature to call.")
flags.DEFINE_string("num_samples", "4", f"sample: how many images, an integer in [1, {client.MAX_IMAGES_PER_REQUEST}].")
flags.DEFINE_list("seed", ["0", "0"], "sample, reconstruct: two integers in int32's range.")
flags.DEFINE_string("images", None, "reconstruct, encode, elbo: a .npy file of [n, H, W, 3] values in [0, 255].")
flags.DEFINE_integer("image_size", None, "With --rest_body and --images: the model's image size.")
flags.DEFINE_string("out", "request.png", "Where image outputs go (a .png grid).")
flags.DEFINE_bool("rest_body", False, "Print the validated JSON body of a TF Serving REST :predict request instead.")


def _integer(text, name):
    try:
        return int(text)
    except ValueError:
        raise app.UsageError(f"Flag --{name} must be an integer. Received: {text!r}") from None


def _load_images(path):
    """The uint8 images of a .npy file; one line naming the file when it is missing or not a plain .npy array."""
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise app.UsageError(f"Flag --images: no such file {path!r}.") from None
    except (OSError, ValueError) as error:  # a folder, an .npz, a pickle, a text file, a truncated array
        raise DamagedFile(f"{path} is not a .npy file of uint8 images [n, H, W, 3] ({str(error).splitlines()[0]}). "
                          "Write it with numpy.save(path, images).") from None


def _inputs():
    """The signature's inputs from the flags, as Python/numpy values (validated by gd_bottleneck.client)."""
    inputs = {}
    if FLAGS.signature == "sample":
        inputs["num_samples"] = _integer(FLAGS.num_samples, "num_samples")
    if FLAGS.signature in ("sample", "reconstruct"):
        inputs["seed"] = [_integer(value, "seed") for value in FLAGS.seed]
    if FLAGS.signature != "sample":
        if not FLAGS.images:
            raise app.UsageError(f"Flag --images is required with --signature={FLAGS.signature}.")
        inputs["images"] = _load_images(FLAGS.images)
    return inputs


def main(argv):
    inputs = _inputs()
    try:
        if FLAGS.rest_body:
            print(json.dumps(client.rest_request(FLAGS.signature, FLAGS.image_size, **inputs)))
            return
        if not FLAGS.model:
            raise app.UsageError("Flag --model is required (or --rest_body).")
        model = client.ExportedModel(FLAGS.model)
        outputs = getattr(model, FLAGS.signature)(**inputs)
    except DamagedFile:
        raise  # a file problem: one line, exit 2 (cli.run), not a usage error
    except ValueError as error:
        raise app.UsageError(str(error).replace("Argument `", "Flag `--"))
    if isinstance(outputs, np.ndarray):
        write_png_grid(FLAGS.out, outputs)
        print(f"Wrote {len(outputs)} images to {FLAGS.out}")
    else:
        print(json.dumps({name: value.tolist() for name, value in outputs.items()}))


def run():
    """Console-script entry point (see setup.cfg)."""
    cli.run(main)


if __name__ == "__main__":
    run()

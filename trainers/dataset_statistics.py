"""Reference figures of a dataset: per-channel moments beside CIFAR-10's, and pixel-independent baselines.

    python -m trainers.dataset_statistics --dataset=photos --image_size=16 --out=results/photos/statistics_16.json

Prints one JSON object (and writes it to ``--out``): the split sizes, each split's per-channel mean and standard
deviation in [0, 1] units beside CIFAR-10's published ones, and the test bits/dim of the two baselines of
gd_bottleneck/data/statistics.py (a model must beat ``independent_bpd`` to have learned anything across pixels).
"""

import json

from absl import app, flags

from gd_bottleneck import cli, data
from gd_bottleneck.data import statistics
from gd_bottleneck.training import files

FLAGS = flags.FLAGS
flags.DEFINE_enum("dataset", "photos", list(data.DATASETS), "Which dataset.")
flags.DEFINE_integer("image_size", 16, "Image side in pixels.")
flags.DEFINE_string("data_dir", None, "tfds data directory (default: $TFDS_DATA_DIR or ~/tensorflow_datasets).")
flags.DEFINE_string("out", None, "Also write the JSON object to this file.")


def dataset_statistics(dataset, image_size, data_dir=None):
    train = data.load_images(dataset, "train", image_size, data_dir)
    test = data.load_images(dataset, "test", image_size, data_dir)
    result = {"dataset": dataset, "image_size": image_size, "train_images": len(train), "test_images": len(test),
              "cifar10_mean": list(statistics.CIFAR10_MEAN), "cifar10_std": list(statistics.CIFAR10_STD)}
    for split, images in (("train", train), ("test", test)):
        mean, std = statistics.channel_moments(images)
        result[f"{split}_mean"], result[f"{split}_std"] = [round(float(v), 4) for v in mean], [
            round(float(v), 4) for v in std]
    result["marginal_bpd"] = round(statistics.marginal_bpd(train, test), 4)
    result["independent_bpd"] = round(statistics.independent_bpd(train, test), 4)
    return result


def main(argv):
    try:
        result = dataset_statistics(FLAGS.dataset, FLAGS.image_size, FLAGS.data_dir)
    except ValueError as error:
        raise app.UsageError(str(error).replace("Argument `", "Flag `--"))
    print(json.dumps(result, indent=2))
    if FLAGS.out:
        files.write_json_atomically(FLAGS.out, result)


def run():
    """Console-script entry point (see setup.cfg)."""
    cli.run(main)


if __name__ == "__main__":
    run()

"""Image grids: many uint8 images as one picture, for TensorBoard and for PNG files."""

import os

import numpy as np
import tensorflow as tf


def image_grid(images, columns=8):
    """uint8 ``[N, H, W, 3]`` -> one uint8 grid image ``[1, rows*H, columns*W, 3]`` (missing cells black)."""
    images = np.asarray(images)
    count, height, width, channels = images.shape
    rows = -(-count // columns)
    padded = np.zeros((rows * columns, height, width, channels), np.uint8)
    padded[:count] = images
    grid = padded.reshape(rows, columns, height, width, channels).transpose(0, 2, 1, 3, 4)
    return grid.reshape(1, rows * height, columns * width, channels)


def write_png_grid(path, images, columns=8):
    """Writes ``images`` (uint8 ``[N, H, W, 3]``) as one PNG grid at ``path``, atomically (a viewer or a crash never
    sees half a file)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    partial = f"{path}.partial"
    tf.io.write_file(partial, tf.io.encode_png(image_grid(images, columns)[0]))
    os.replace(partial, path)

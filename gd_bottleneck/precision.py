"""Mixed precision for the networks, with everything probabilistic kept in float32.

``ModelConfig.precision`` picks the Keras dtype policy of the three networks (VAE encoder, VAE decoder, PixelCNN++):

* ``"float32"`` (default): everything in float32.
* ``"mixed_bfloat16"``: convolutions and activations in bfloat16, weights and their updates in float32. On CPUs with
  AMX (Sapphire Rapids and later) oneDNN runs bfloat16 convolutions several times as fast as float32
  (docs/benchmarks.md); on TPUs and recent GPUs it is the usual choice. No loss scaling needed.
* ``"mixed_float16"``: float16 compute for GPUs; the optimizer is wrapped in Keras' ``LossScaleOptimizer`` (dynamic
  loss scaling), because float16 gradients underflow otherwise.

What stays float32 whatever the policy: the posterior's mean/scale head, the PixelCNN++ output head (v), the
bottleneck, the mixer and its mixture parameters, the discretized logistic likelihood and every KL. A bin of the
likelihood is 2/255 wide in the rescaled space, finer than bfloat16's resolution near 1 (2^-7), so those parts must
not be rounded to 16 bits.
"""

import contextlib

import keras

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def check_precision(value, name="precision"):
    """Returns ``value`` if it is one of :data:`PRECISIONS`; ``ValueError`` naming ``name`` otherwise."""
    if value not in PRECISIONS:
        raise ValueError(f"Argument `{name}` must be one of {list(PRECISIONS)}. Received: {name}={value!r}")
    return value


@contextlib.contextmanager
def policy_scope(policy):
    """Layers created inside take ``policy`` (a name or ``DTypePolicy``) as their default dtype policy.

    Keras 3 has only a process-wide default policy, and a composite layer's sublayers do not inherit the parent's
    ``dtype``; a composite layer creates its sublayers inside ``policy_scope(self.dtype_policy)`` so that the whole
    network follows the policy it was given (also when it is rebuilt from its config alone). Layers that must stay
    float32 pass ``dtype="float32"`` explicitly.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)

"""Runs a Keras layer on a global batch under MirroredStrategy with N logical CPU replicas (see conftest.py)."""

import tensorflow as tf


def run_on_replicas(make_layer, weights, x, strategy, training=True, calls=1):
    """Builds ``make_layer()`` in ``strategy``'s scope, loads ``weights``, and calls it ``calls`` times.

    Each call splits ``x`` (a global batch) evenly across replicas. Returns the per-call outputs gathered back into
    global-batch order, the per-call sum of the layer's ``add_loss`` terms scaled as Keras' trainer would (each
    replica's loss / num_replicas, summed across replicas), and the layer.
    """
    num_replicas = strategy.num_replicas_in_sync
    local = x.shape[0] // num_replicas
    with strategy.scope():
        layer = make_layer()
        layer.build(x.shape)
        if weights is not None:
            layer.set_weights(weights)

    @tf.function
    def step(inputs):
        def replica_fn(batch):
            output = layer(batch, training=training)
            loss = tf.add_n(layer.losses) / num_replicas if layer.losses else tf.constant(0.0)
            return output, loss
        output, loss = strategy.run(replica_fn, args=(inputs,))
        # Local results, not strategy.gather/reduce: those are collectives, and collective instance keys of
        # separate MirroredStrategy objects collide within one process (TF 2.21).
        return (tf.concat(strategy.experimental_local_results(output), axis=0),
                tf.add_n(strategy.experimental_local_results(loss)))

    distributed = strategy.experimental_distribute_values_from_function(
        lambda ctx: x[ctx.replica_id_in_sync_group * local:(ctx.replica_id_in_sync_group + 1) * local])
    results = [step(distributed) for _ in range(calls)]
    return [r[0].numpy() for r in results], [float(r[1]) for r in results], layer

"""The hybrid decoder p(x | z) as a Keras functional model: every layer and tensor of the paper's Figure 1 visible.

    z [B, L, L, C] ---------> decoder ---------> u [B, H, W, Cu] ------------------------+--> aux_decoder (optional)
                                                  |                                      |
    x [B, H, W, 3] in [-1, 1] --> pixelcnn([x, u]) --> v [B, H, W, D] --> bottleneck --> v~
                                                                                         |
                               mixer_input = Concatenate([v~, u]) -> mixer_hidden (Dense, ELU) -> mixer_output
                               -> params [B, H, W, K * 10] (DiscretizedLogisticMixture.from_params)

``x`` is the teacher-forcing image (the pixels the PixelCNN++ conditions on, rescaled); the parameters at pixel j
depend only on ``x`` before j in raster order and on ``z``. Outputs (a dict): ``params``, ``v``, ``u``, plus
``bottleneck_penalty`` ``[B]`` (nats) when the bottleneck has a penalty and ``aux_params`` when an auxiliary decoder
is given. ``model.summary()`` lists the layers with their shapes; ``keras.utils.plot_model`` draws the graph.
"""

import keras


def build_hybrid_decoder(config, decoder, pixelcnn, bottleneck, mixer_hidden, mixer_output, aux_decoder=None):
    """Wires the (already created) layers into the functional model; see the module docstring for the graph.

    Args:
        config: the :class:`~gd_bottleneck.config.ModelConfig` (input shapes).
        decoder, pixelcnn, mixer_hidden, mixer_output, aux_decoder: Keras layers (the last one optional).
        bottleneck: a :class:`~gd_bottleneck.bottlenecks.Bottleneck` layer.
    """
    size, latent = config.image_size, config.latent_size
    z = keras.Input((latent, latent, config.latent_channels), name="z")
    x = keras.Input((size, size, 3), name="x")
    u = decoder(z)
    v = pixelcnn([x, u])
    outputs = {"v": v, "u": u}
    if bottleneck.has_penalty:
        v_tilde, outputs["bottleneck_penalty"] = bottleneck(v, return_penalty=True)
    else:
        v_tilde = bottleneck(v)
    mixer_input = keras.layers.Concatenate(name="mixer_input")([v_tilde, u])
    outputs["params"] = mixer_output(mixer_hidden(mixer_input))
    if aux_decoder is not None:
        outputs["aux_params"] = aux_decoder(u)
    return keras.Model([z, x], outputs, name="hybrid_decoder")

"""Model configurations small enough for exact checks (Jacobians, replica equality) in seconds."""

from gd_bottleneck.config import ModelConfig

# 8x8 images, every structural feature present: 3 PixelCNN++ stages (8 -> 4 -> 2), a VAE halving once (8 -> 4).
TINY = ModelConfig(image_size=8, resnet_blocks=2, resnet_channels=8, resnet_bottleneck_channels=4,
                   decoder_output_channels=8, latent_size=4, latent_channels=4, pixelcnn_filters=8,
                   pixelcnn_resnets_per_stage=1, pixelcnn_stages=3, pixelcnn_output_dim=10, mixer_units=16,
                   mixture_components=3)

# For tests of how a run goes (checkpoints, resumes, signals, replicas and workers, the CLIs, searches) rather than
# of the model's structure: one PixelCNN++ stage and one VAE block. Such a test pays mostly for tracing its
# training and evaluation steps, and this model's train() takes 6 s against TINY's 15 s (40 steps, one core).
RUN_MODEL = TINY.replace(pixelcnn_stages=1, resnet_blocks=1)

RUN_OVERRIDES = {name: value for name, value in RUN_MODEL.to_dict().items() if name != "image_size"}
RUN_FLAGS = [f"--{name}={value}" for name, value in RUN_OVERRIDES.items()]  # the same, as trainer flags


def tiny_run(model_dir, data_dir, **changes):
    """A RunConfig of a few steps of the RUN_MODEL on the embedded 8x8 dataset (changes override the defaults)."""
    from gd_bottleneck.training import RunConfig
    settings = dict(model_dir=str(model_dir), data_dir=data_dir, dataset="shapes_tiny", image_size=8,
                    model_overrides=RUN_OVERRIDES,
                    export_dir=f"{model_dir}/export",  # not the repository's saved_models/
                    dropout_rate=0.1, batch_size=8, epochs=2, steps_per_epoch=3, checkpoint_every=2,
                    keep_checkpoints=2, log_every=1, progress="lines", image_summaries=2, learning_rate=1e-3)
    settings.update(changes)
    return RunConfig(**settings)

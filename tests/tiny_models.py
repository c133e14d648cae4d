"""Model configurations small enough for exact checks (Jacobians, replica equality) in seconds."""

from gd_bottleneck.config import ModelConfig

# 8x8 images, every structural feature present: 3 PixelCNN++ stages (8 -> 4 -> 2), a VAE halving once (8 -> 4).
TINY = ModelConfig(image_size=8, resnet_blocks=2, resnet_channels=8, resnet_bottleneck_channels=4,
                   decoder_output_channels=8, latent_size=4, latent_channels=4, pixelcnn_filters=8,
                   pixelcnn_resnets_per_stage=1, pixelcnn_stages=3, pixelcnn_output_dim=10, mixer_units=16,
                   mixture_components=3)

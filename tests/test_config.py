"""ModelConfig presets and validation."""

import pytest

from gd_bottleneck.config import PRESETS, ModelConfig, paper, small


def test_paper_preset_is_appendix_b():
    cfg = paper()
    assert (cfg.resnet_blocks, cfg.resnet_channels, cfg.resnet_bottleneck_channels) == (7, 512, 128)
    assert cfg.decoder_output_channels == 256
    assert (cfg.latent_size, cfg.latent_channels) == (4, 16)
    assert (cfg.pixelcnn_filters, cfg.pixelcnn_resnets_per_stage, cfg.pixelcnn_stages) == (160, 5, 3)
    assert cfg.pixelcnn_dropout == 0.5 and cfg.pixelcnn_output_dim == 10
    assert (cfg.mixer_units, cfg.mixture_components) == (266, 10)
    assert cfg.image_size == 32 and cfg.dims_per_image == 3072 and cfg.vae_downsamplings == 3


@pytest.mark.parametrize("size", [32, 16, 8])
def test_presets_accept_smaller_images(size):
    for preset in PRESETS.values():
        assert preset(size).image_size == size


def test_dict_round_trip_and_replace():
    cfg = small(16)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.replace(mixer_units=7).mixer_units == 7
    with pytest.raises(ValueError, match="Unknown ModelConfig fields"):
        ModelConfig.from_dict({**cfg.to_dict(), "mixer_unit": 3})


@pytest.mark.parametrize("changes, field", [
    (dict(image_size=0), "image_size"), (dict(resnet_channels=0), "resnet_channels"),
    (dict(pixelcnn_filters=2.5), "pixelcnn_filters"), (dict(pixelcnn_dropout=1.0), "pixelcnn_dropout"),
    (dict(mixture_components=0), "mixture_components"), (dict(latent_size=3), "latent_size"),
    (dict(image_size=12, latent_size=4), "image_size"), (dict(image_size=8, pixelcnn_stages=5), "image_size"),
    (dict(resnet_blocks=-1), "resnet_blocks")])
def test_invalid_fields_are_named(changes, field):
    with pytest.raises(ValueError, match=f"`{field}`"):
        paper().replace(**changes)

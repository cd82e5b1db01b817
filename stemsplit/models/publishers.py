"""Which model family runs which publisher's files: the format adapters in ``stemsplit/formats/``
ask here (``family_for_format``) and never name a family themselves. Torch-free, because
Open-Unmix's files become an ONNX graph on an install without torch.
"""
from __future__ import annotations

from stemsplit.errors import ConfigError

# (format, variant) -> the registered family; the variant is what in the files picks the network
FAMILIES = {
    ("openunmix", "network"): "open_unmix",
    ("demucs", "network"): "htdemucs",
    ("demucs", "bag"): "htdemucs_bag",  # a bag YAML of several networks
    ("roformer", "freqs_per_bands"): "bs_roformer",  # an MSST config's band layout key
    ("roformer", "num_bands"): "mel_band_roformer",
}


def family_for_format(format_name: str, variant: str) -> str:
    """The family that runs a publisher's files of ``format_name`` (e.g. "demucs", variant "bag")."""
    try:
        return FAMILIES[(format_name, variant)]
    except KeyError:
        raise ConfigError(f"no model family runs {format_name} files ({variant}); update stemsplit") from None

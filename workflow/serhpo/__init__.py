"""serhpo: speech emotion recognition with pretrained models and hyper-parameter optimisation."""

__version__ = "0.1.0"

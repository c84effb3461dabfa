"""filterprior: priors over convolution filters for training on very little data."""

__version__ = "0.1.0"

"""Term-deposit propensity platform for the UCI Bank Marketing data."""

__version__ = "0.1.0"

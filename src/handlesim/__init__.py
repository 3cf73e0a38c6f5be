"""handlesim: an identifier-resolution simulator for the Handle System's root / secondary / enterprise hierarchy."""

__version__ = "0.1.0"

"""sogni: a command-line tool for the Sogni Intelligence API."""

__version__ = "0.1.0"

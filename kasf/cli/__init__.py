"""The `kasf` command line: one module per command; argparse lives only here."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]

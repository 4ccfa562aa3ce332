"""Command-line tools: one module per command, each with its own argument parser and main(argv)."""

"""Command-line entry points (absl apps). The library itself never reads flags."""

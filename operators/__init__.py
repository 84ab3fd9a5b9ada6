"""wattflow operators."""

"""wattflow flows."""

"""wattflow connectors."""

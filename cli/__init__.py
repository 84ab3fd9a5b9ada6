"""The ``wattflow`` command line: ``main`` assembles the commands, one module per command group."""

"""Feed adapters: recorded files, the SMARD day-ahead file, the intraday market simulator."""

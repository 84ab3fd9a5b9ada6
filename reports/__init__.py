"""Reports: the signals of a day (``signals``) and the trading day (``trading``), tables and plots."""

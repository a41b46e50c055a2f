"""What feeds the core from outside: Kraken through krakenex, and a bot's /api/status."""

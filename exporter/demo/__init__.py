"""The demo: a simulated bot, a local fake Kraken, and the wiring that runs them."""

"""The pure core: windows, capacity math, bands, and the hooks' state. No I/O, clock injected."""

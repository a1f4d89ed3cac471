"""From a trained SLAYER model to the Lava runtime: NetX export, loading, fixed-point runs on Lava's
CPU simulator, SLAYER-vs-Lava parity, and resource / energy estimates."""

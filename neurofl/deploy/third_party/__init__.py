"""`verify` for NetX files written by others (lava-dl's test networks): reading and checking the
file, a reference built from the file itself, SDNN layers, the Lava run, parity."""

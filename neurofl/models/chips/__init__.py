"""The chip networks that are not SLAYER's: Xylo's integer neuron and network, the one-state chips'
neuron and network (Speck, Akida, SpiNNaker2, TrueNorth), TrueNorth's crossbar."""

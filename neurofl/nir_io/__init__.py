"""NIR (Neuromorphic Intermediate Representation) import and export.

``read`` turns a ``.nir`` file into a validated :class:`~neurofl.nir_io.read.NirGraph` (hostile
input refused before anything large is read), ``neurons`` maps NIR neuron nodes onto SLAYER's CUBA
neuron and back (a pure table), ``to_model`` builds a neurofl SNN from a graph, ``from_model``
writes a neurofl SNN as a NIR graph. See ``docs/nir.md``.
"""

"""Labelling: a queue of drifted production inputs and a local page to label them on."""

"""drumtx: drum audio to drum MIDI, and the training that makes the model."""

__version__ = "0.1.0"

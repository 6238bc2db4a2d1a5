"""hwgen: generate, solve and grade the hand-computed backpropagation homework (HW#2)."""

__version__ = "0.1.0"

"""Lets ``python -m grader`` stand in for the ``hwgen`` console script."""

from grader.cli import main

main(prog_name="hwgen")

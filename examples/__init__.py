"""Worked examples of extending modelcollapse (see the README's "Extend it"); not installed with the package."""

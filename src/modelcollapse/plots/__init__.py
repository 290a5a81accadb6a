"""Figures: each module turns summary tables (never raw simulations) into PDF + PNG files."""
